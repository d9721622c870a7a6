"""NVTabular workflow and id maps on the real MovieLens-100k interactions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reclab.id_maps import IdMap
from workflow_builder import build_all_data, build_workflow

TRAIN_END, VALID_END = pd.Timestamp("1998-03-07"), pd.Timestamp("1998-03-31")


@pytest.fixture(scope="module")
def built(tmp_path_factory, ml100k_dir):
    """Canonical windows written straight from u.data with pandas, then the workflow."""
    root = tmp_path_factory.mktemp("workflow")
    raw = pd.read_csv(ml100k_dir / "u.data", sep="\t", names=["user_id", "item_id", "weight", "ts"])
    raw["weight"] = raw["weight"].astype(float)
    raw["ts"] = pd.to_datetime(raw["ts"], unit="s")
    users = pd.read_csv(ml100k_dir / "u.user", sep="|", names=["user_id", "age", "g", "occ", "z"])
    raw = raw.merge(
        users.rename(columns={"g": "user_gender", "occ": "user_occupation"})[
            ["user_id", "user_gender", "user_occupation"]
        ],
        on="user_id",
    )
    split = root / "split"
    split.mkdir()
    windows = {
        "train": raw[raw.ts < TRAIN_END],
        "valid": raw[(raw.ts >= TRAIN_END) & (raw.ts < VALID_END)],
        "test": raw[raw.ts >= VALID_END],
    }
    for name, frame in windows.items():
        frame.to_parquet(split / f"{name}.parquet")
    return root, windows, build_workflow(split, root)


def test_every_train_id_round_trips(built) -> None:
    _, windows, result = built
    train = windows["train"]
    for column, id_map in (("user_id", result.user_map), ("item_id", result.item_map)):
        raw_ids = np.sort(train[column].unique())
        assert len(id_map) == len(raw_ids)
        idx = id_map.to_idx(raw_ids)
        assert sorted(idx.tolist()) == list(range(len(raw_ids)))
        np.testing.assert_array_equal(id_map.to_raw(idx), raw_ids)


def test_encoded_ids_agree_with_nvtabular_codes(built) -> None:
    root, windows, result = built
    nvt_train = pd.read_parquet(next((root / "nvt" / "train").glob("*.parquet")))
    encoded = pd.read_parquet(root / "encoded" / "train.parquet")
    np.testing.assert_array_equal(
        result.user_map.code_to_idx(nvt_train["user_id"].to_numpy()), encoded["user_idx"]
    )
    np.testing.assert_array_equal(
        result.item_map.code_to_idx(nvt_train["item_id"].to_numpy()), encoded["item_idx"]
    )
    np.testing.assert_array_equal(
        result.item_map.to_raw(encoded["item_idx"]), windows["train"]["item_id"].to_numpy()
    )


def test_unseen_ids_stay_distinct_in_windows_and_go_to_oov_in_nvtabular(built) -> None:
    root, windows, result = built
    test = windows["test"]
    encoded = pd.read_parquet(root / "encoded" / "test.parquet")
    unseen_items = ~test["item_id"].isin(windows["train"]["item_id"]).to_numpy()
    cold_users = ~test["user_id"].isin(windows["train"]["user_id"]).to_numpy()
    assert unseen_items.any() and cold_users.any()
    codes = encoded["item_idx"].to_numpy()[unseen_items]
    assert (codes >= len(result.item_map)).all()
    assert len(np.unique(codes)) == test["item_id"][unseen_items].nunique()
    users = encoded["user_idx"].to_numpy()[cold_users]
    assert (users < 0).all() and len(np.unique(users)) == test["user_id"][cold_users].nunique()
    nvt_test = pd.read_parquet(next((root / "nvt" / "test").glob("*.parquet")))
    assert (result.item_map.code_to_idx(nvt_test["item_id"].to_numpy())[unseen_items] == -1).all()


def test_features_are_tagged_for_merlin(built) -> None:
    root, _, result = built
    from merlin.io import Dataset
    from merlin.schema import Tags

    schema = Dataset(str(root / "nvt" / "train"), engine="parquet", cpu=True).schema
    assert schema.select_by_tag(Tags.USER_ID).column_names == ["user_id"]
    assert schema.select_by_tag(Tags.ITEM_ID).column_names == ["item_id"]
    assert set(schema.select_by_tag(Tags.USER).column_names) >= {"user_gender", "user_occupation"}
    assert set(result.user_features) == {"user_gender", "user_occupation"}


def test_id_map_from_category_file_uses_stored_codes(tmp_path) -> None:
    # Codes stored in the index, rows deliberately out of order: numbering rows would be wrong.
    frame = pd.DataFrame({"item_id": [30, 10, 20]}, index=[5, 3, 4])
    frame.to_parquet(tmp_path / "unique.item_id.parquet")
    id_map = IdMap.from_category_file(tmp_path / "unique.item_id.parquet", "item_id")
    assert id_map.code_offset == 3
    assert id_map.to_idx([10, 20, 30, 99]).tolist() == [0, 1, 2, -1]
    assert id_map.to_idx_distinct_unknown([10, 99, 98, 99]).tolist() == [0, 4, 3, 4]
    assert id_map.to_idx_distinct_unknown([99, 10], below=True).tolist() == [-1, 0]
    assert id_map.code_to_idx(np.array([0, 1, 2, 3, 5, 6])).tolist() == [-1, -1, -1, 0, 2, -1]
    with pytest.raises(IndexError):
        id_map.to_raw([3])


def test_ids_only_workflow_gives_the_same_id_maps_and_encoded_windows(built, tmp_path) -> None:
    """Without a family that reads NVTabular's output, only the ids are fitted: same maps."""
    import shutil

    root, _, with_features = built
    split = shutil.copytree(root / "split", tmp_path / "split")
    (split / "items.parquet").write_bytes(b"metadata")  # metadata tables are kept
    ids_only = build_workflow(split, tmp_path, with_features=False, keep_split_windows=False)
    assert sorted(p.name for p in split.iterdir()) == ["items.parquet"]
    for column in ("user_map", "item_map"):
        full, lean = getattr(with_features, column), getattr(ids_only, column)
        np.testing.assert_array_equal(full.raw_ids, lean.raw_ids)
        assert full.code_offset == lean.code_offset
    for window in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "encoded" / f"{window}.parquet"),
            pd.read_parquet(root / "encoded" / f"{window}.parquet"),
        )
        assert not (tmp_path / "nvt" / window).exists()  # no tagged parquet is written
    categories = tmp_path / "nvt" / "workflow" / "categories"
    assert sorted(p.name for p in categories.iterdir()) == [
        "unique.item_id.parquet",
        "unique.user_id.parquet",
    ]
    assert ids_only.user_features == [] and ids_only.item_features == []


def test_all_data_build_knows_every_user_and_item_of_every_window(built, tmp_path) -> None:
    root, windows, train_built = built
    full = build_all_data(root / "split", tmp_path, with_features=True)
    everything = pd.concat(windows.values(), ignore_index=True)
    assert len(full.user_map) == everything["user_id"].nunique() == 943
    assert len(full.item_map) == everything["item_id"].nunique() == 1682
    assert len(train_built.user_map) < 943  # users first seen after train exist
    encoded = pd.read_parquet(tmp_path / "encoded" / "train.parquet")
    assert len(encoded) == len(everything)
    assert encoded["user_idx"].between(0, 942).all() and encoded["item_idx"].between(0, 1681).all()
    pairs = set(
        zip(
            full.user_map.to_raw(encoded["user_idx"]).tolist(),
            full.item_map.to_raw(encoded["item_idx"]).tolist(),
            strict=True,
        )
    )
    assert pairs == set(zip(everything["user_id"], everything["item_id"], strict=True))
    # The two-tower refit reads Merlin's tagged parquet of all the rows.
    nvt_rows = pd.concat(map(pd.read_parquet, (tmp_path / "nvt" / "train").glob("*.parquet")))
    assert len(nvt_rows) == len(everything)
    assert (root / "split" / "train.parquet").exists()  # kept unless asked to remove
