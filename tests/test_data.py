"""Tests of the dataset registry, the canonical tables and the synthetic generator.

MovieLens-100k is read from the shared data directory beside the repository
(``../shared/data``, override with ``RECLAB_DATA_DIR``); nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from data import (
    KNOWN_DATASETS,
    MovieLens100kSource,
    generate_synthetic,
    prepare_dataset,
    resolve_source,
)
from data.registry import ML100K_SHA256
from reclab.errors import InputError

ML_FILES = ("u.data", "u.item", "u.user", "u.genre", "u.occupation", "u.info", "README")


def data_root() -> Path:
    """The directory holding ``ml-100k/``: env RECLAB_DATA_DIR or ``../shared/data``."""
    env = os.environ.get("RECLAB_DATA_DIR", "").strip()
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def ml_dir() -> Path:
    """The shared ``ml-100k`` directory (the test is skipped when it is absent)."""
    root = data_root()
    path = root if (root / "u.data").is_file() else root / "ml-100k"
    if not (path / "u.data").is_file():
        pytest.skip(f"MovieLens-100k files not found under {root}; set RECLAB_DATA_DIR")
    return path


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """Keep downloads and generated data in a temporary cache directory."""
    monkeypatch.setenv("RECLAB_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def ml_prepared(tmp_path_factory):
    """MovieLens-100k prepared once without sampling: (info, out_dir)."""
    source = resolve_source("movielens-100k", data_dir=str(ml_dir().parent))
    out = tmp_path_factory.mktemp("ml") / "prepared"
    info = prepare_dataset(source, out)
    return info, out


def read_splits(out: Path) -> pd.DataFrame:
    """Concatenate train/valid/test parquet files with a ``split`` column."""
    frames = [
        pd.read_parquet(out / f"{s}.parquet").assign(split=s) for s in ("train", "valid", "test")
    ]
    return pd.concat(frames, ignore_index=True)


def copy_ml(dest: Path, with_sums: bool = True) -> Path:
    """Copy the MovieLens files (not into the repo) to ``dest/ml-100k``."""
    target = dest / "ml-100k"
    target.mkdir(parents=True)
    for name in ML_FILES + (("SHA256SUMS",) if with_sums else ()):
        shutil.copyfile(ml_dir() / name, target / name)
        os.chmod(target / name, 0o644)
    return target


# ------------------------------------------------------------------------------------------
# MovieLens-100k
# ------------------------------------------------------------------------------------------


def test_movielens_sizes_and_columns(ml_prepared):
    info, out = ml_prepared
    df = read_splits(out)
    assert len(df) == 100_000
    assert df["user_id"].nunique() == 943
    assert df["item_id"].nunique() == 1682
    assert list(df.columns[:-1]) == [
        "user_id",
        "item_id",
        "weight",
        "ts",
        "user_age",
        "user_gender",
        "user_occupation",
        "item_genres",
        "item_year",
    ]
    schema = pq.read_schema(out / "train.parquet")
    assert str(schema.field("user_id").type) == "int64"
    assert str(schema.field("item_id").type) == "int64"
    assert str(schema.field("weight").type) == "double"
    assert str(schema.field("ts").type).startswith("timestamp")
    assert str(schema.field("user_age").type) == "int32"
    assert str(schema.field("item_genres").type) == "list<element: string>"
    assert str(schema.field("item_year").type) == "int32"
    assert set(df["weight"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert info["user_features"] == ["user_age", "user_gender", "user_occupation"]
    assert info["item_features"] == ["item_genres", "item_year"]


def test_movielens_metadata(ml_prepared):
    _, out = ml_prepared
    items = pd.read_parquet(out / "items.parquet").set_index("item_id")
    users = pd.read_parquet(out / "users.parquet").set_index("user_id")
    assert len(items) == 1682 and len(users) == 943
    assert list(items.columns) == ["title", "item_genres", "item_year"]
    assert items.loc[1, "title"] == "Toy Story (1995)"
    assert list(items.loc[1, "item_genres"]) == ["Animation", "Children's", "Comedy"]
    assert items.loc[1, "item_year"] == 1995
    # u.item is latin-1: accented titles must decode.
    assert items.loc[543, "title"] == "Misérables, Les (1995)"
    assert items.loc[1633, "title"] == "Á köldum klaka (Cold Fever) (1994)"
    assert items.loc[1252, "item_year"] == 1997  # release date 27-Jun-1997
    assert pd.isna(items.loc[267, "item_year"])  # no release date
    assert list(users.loc[1, ["user_age", "user_gender", "user_occupation"]]) == [
        24,
        "M",
        "technician",
    ]
    # Features in the interactions agree with the metadata tables.
    row = pd.read_parquet(out / "train.parquet").query("user_id == 1 and item_id == 1").iloc[0]
    assert (row["user_age"], row["user_occupation"]) == (24, "technician")
    assert list(row["item_genres"]) == ["Animation", "Children's", "Comedy"]


def test_movielens_dir_forms_and_env(tmp_path, monkeypatch):
    by_parent = resolve_source("movielens-100k", data_dir=str(ml_dir().parent))
    by_dir = resolve_source("movielens-100k", data_dir=str(ml_dir()))
    assert by_parent.local_dir == by_dir.local_dir == str(ml_dir().resolve())
    monkeypatch.setenv("RECLAB_DATA_DIR", str(ml_dir().parent))
    assert resolve_source("movielens-100k").local_dir == str(ml_dir().resolve())
    monkeypatch.delenv("RECLAB_DATA_DIR")
    cached = resolve_source("movielens-100k")  # no local copy: download deferred to fetch()
    assert cached.local_dir is None
    with pytest.raises(InputError, match="holds no MovieLens-100k files"):
        resolve_source("movielens-100k", data_dir=str(tmp_path))


@pytest.mark.parametrize("with_sums", [True, False], ids=["SHA256SUMS", "built-in sums"])
def test_checksum_mismatch_names_file(tmp_path, with_sums):
    target = copy_ml(tmp_path, with_sums=with_sums)
    raw = bytearray((target / "u.item").read_bytes())
    raw[100] ^= 0x01
    (target / "u.item").write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"checksum mismatch for .*u\.item"):
        resolve_source("movielens-100k", data_dir=str(tmp_path))


def test_missing_movielens_file(tmp_path):
    target = copy_ml(tmp_path)
    (target / "u.user").unlink()
    with pytest.raises(InputError, match=r"u\.user is missing"):
        resolve_source("movielens-100k", data_dir=str(target))


def _zip_ml(tmp_path: Path, corrupt: bool = False) -> Path:
    """Build an ml-100k.zip like GroupLens's from the shared files."""
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ML_FILES:
            data = (ml_dir() / name).read_bytes()
            if corrupt and name == "u.data":
                data = data[:-10]
            zf.writestr(f"ml-100k/{name}", data)
    return archive


def test_download_from_local_url(tmp_path):
    cache_root = tmp_path / "cache" / "movielens-100k"
    source = MovieLens100kSource(cache_root=str(cache_root), url=_zip_ml(tmp_path).as_uri())
    path = source.fetch()
    assert path == cache_root / "ml-100k"
    assert sorted(p.name for p in cache_root.iterdir()) == ["ml-100k"]  # no temp leftovers
    assert set(ML100K_SHA256) <= {p.name for p in path.iterdir()}
    assert source.fetch() == path  # second call uses the cache


def test_download_checksum_mismatch_is_deleted(tmp_path):
    cache_root = tmp_path / "cache"
    url = _zip_ml(tmp_path, corrupt=True).as_uri()
    with pytest.raises(InputError, match=r"checksum mismatch for u\.data"):
        MovieLens100kSource(cache_root=str(cache_root), url=url).fetch()
    assert list(cache_root.iterdir()) == []
    with pytest.raises(InputError, match="could not download"):
        MovieLens100kSource(
            cache_root=str(cache_root), url=(tmp_path / "nope.zip").as_uri()
        ).fetch()


def test_unknown_dataset_lists_known_names():
    with pytest.raises(InputError) as err:
        resolve_source("movielens-2m")
    for name in KNOWN_DATASETS:
        assert name in str(err.value)


def test_interactions_file_needs_file_dataset(tmp_path):
    with pytest.raises(InputError, match="dataset 'file'"):
        resolve_source("movielens-100k", interactions_file=str(tmp_path / "x.csv"))
    with pytest.raises(InputError, match="needs interactions_file"):
        resolve_source("file")


# ------------------------------------------------------------------------------------------
# User files
# ------------------------------------------------------------------------------------------


def _user_frame(n_users: int = 30, per_user: int = 10) -> pd.DataFrame:
    """A small play-log with string user ids, epoch seconds and side features."""
    rng = np.random.default_rng(0)
    n = n_users * per_user
    users = np.repeat(np.arange(n_users), per_user)
    return pd.DataFrame(
        {
            "uid": [f"u{u}" for u in users],
            "song": rng.integers(0, 50, n),
            "plays": rng.integers(1, 20, n),
            "when": 1_600_000_000 + rng.integers(0, 100 * 86_400, n),
            "country": np.where(users % 2 == 0, "FR", "JP"),
            "genre": np.where(rng.random(n) < 0.5, "rock", "jazz"),
        }
    )


MAPPING = {
    "user": "uid",
    "item": "song",
    "timestamp": "when",
    "weight": "plays",
    "user_features": ["country"],
    "item_features": ["genre"],
}


def _check_user_file_output(out: Path, frame: pd.DataFrame) -> None:
    df = read_splits(out)
    assert len(df) == len(frame)
    assert list(df.columns[:-1]) == [
        "user_id",
        "item_id",
        "weight",
        "ts",
        "user_country",
        "item_genre",
    ]
    assert df["user_id"].map(type).eq(str).all()
    assert str(pq.read_schema(out / "train.parquet").field("item_id").type) == "int64"
    got = df.sort_values(["user_id", "ts", "item_id", "weight"]).reset_index(drop=True)
    want = pd.DataFrame(
        {
            "user_id": frame["uid"],
            "item_id": frame["song"],
            "weight": frame["plays"].astype(float),
            "ts": pd.to_datetime(frame["when"], unit="s"),
        }
    ).sort_values(["user_id", "ts", "item_id", "weight"])
    pd.testing.assert_frame_equal(
        got[["user_id", "item_id", "weight", "ts"]],
        want.reset_index(drop=True),
        check_dtype=False,
    )
    users = pd.read_parquet(out / "users.parquet")
    items = pd.read_parquet(out / "items.parquet")
    assert list(users.columns) == ["user_id", "user_country"]
    assert len(users) == frame["uid"].nunique()
    assert users.set_index("user_id").loc["u0", "user_country"] == "FR"
    assert list(items.columns) == ["item_id", "title", "item_genre"]
    assert len(items) == frame["song"].nunique()


def test_user_file_parquet(tmp_path):
    frame = _user_frame()
    path = tmp_path / "plays.parquet"
    frame.to_parquet(path)
    source = resolve_source("file", interactions_file=str(path), columns=MAPPING)
    info = prepare_dataset(source, tmp_path / "out")
    assert info["method"] == "time_window"
    _check_user_file_output(tmp_path / "out", frame)


def test_user_file_csv_with_text_timestamps(tmp_path):
    frame = _user_frame()
    csv = frame.assign(
        when=pd.to_datetime(frame["when"], unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    path = tmp_path / "plays.csv"
    csv.to_csv(path, index=False)
    source = resolve_source("file", interactions_file=str(path), columns=json.dumps(MAPPING))
    assert source.file_format == "text"
    prepare_dataset(source, tmp_path / "out")
    _check_user_file_output(tmp_path / "out", frame)


def test_user_file_parquet_directory(tmp_path):
    frame = _user_frame()
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:150].to_parquet(folder / "part-0.parquet")
    frame.iloc[150:].to_parquet(folder / "part-1.parquet")
    source = resolve_source("file", interactions_file=str(folder), columns=MAPPING)
    prepare_dataset(source, tmp_path / "out")
    _check_user_file_output(tmp_path / "out", frame)


def test_canonical_output_reads_back_without_mapping(ml_prepared, tmp_path):
    _, out = ml_prepared
    source = resolve_source("file", interactions_file=str(out / "test.parquet"))
    assert source.columns["timestamp"] == "ts"
    assert source.columns["item_features"] == ["item_genres", "item_year"]
    info = prepare_dataset(source, tmp_path / "again")
    assert info["user_features"] == ["user_age", "user_gender", "user_occupation"]


def test_missing_column_lists_existing(tmp_path):
    path = tmp_path / "plays.parquet"
    _user_frame().to_parquet(path)
    bad = {**MAPPING, "timestamp": "time"}
    with pytest.raises(InputError, match=r"\['time'\] not found.*'uid', 'song', 'plays'"):
        resolve_source("file", interactions_file=str(path), columns=bad)
    with pytest.raises(InputError, match="unknown keys"):
        resolve_source("file", interactions_file=str(path), columns={**MAPPING, "rating": "x"})
    with pytest.raises(InputError, match="'item' entry"):
        resolve_source("file", interactions_file=str(path), columns={"user": "uid"})


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        resolve_source("file", interactions_file=str(tmp_path / "nope.csv"), columns=MAPPING)


def test_unsupported_extension(tmp_path):
    path = tmp_path / "plays.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(InputError, match="is a spreadsheet"):
        resolve_source("file", interactions_file=str(path), columns=MAPPING)


@pytest.mark.parametrize("name", ["empty.csv", "empty.parquet"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(InputError, match="is empty"):
        resolve_source("file", interactions_file=str(path), columns=MAPPING)


def test_header_only_csv(tmp_path):
    path = tmp_path / "plays.csv"
    path.write_text("uid,song\n")
    source = resolve_source(
        "file", interactions_file=str(path), columns={"user": "uid", "item": "song"}
    )
    with pytest.raises(InputError, match="no data rows"):
        prepare_dataset(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["garbage.csv", "garbage.parquet"])
def test_unparsable_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="could not parse"):
        resolve_source("file", interactions_file=str(path), columns=MAPPING)


def test_null_ids(tmp_path):
    frame = _user_frame().astype({"song": "float64"})
    frame.loc[3, "uid"] = None
    path = tmp_path / "plays.parquet"
    frame.drop(columns="song").assign(song=frame["song"].astype("Int64")).to_parquet(path)
    source = resolve_source("file", interactions_file=str(path), columns=MAPPING)
    with pytest.raises(InputError, match=r"1 of 300 rows .* null id in column 'uid'"):
        prepare_dataset(source, tmp_path / "out")


def test_bad_timestamps_and_weights(tmp_path):
    frame = _user_frame().astype({"when": str, "plays": str})
    frame.loc[5, "when"] = "yesterday"
    path = tmp_path / "plays.csv"
    frame.to_csv(path, index=False)
    source = resolve_source("file", interactions_file=str(path), columns=MAPPING)
    with pytest.raises(
        InputError, match=r"unparsable timestamp in column 'when' \(e.g. 'yesterday'\)"
    ):
        prepare_dataset(source, tmp_path / "out")
    frame = _user_frame()
    frame["when"] = frame["when"] * 1000  # milliseconds
    frame.to_parquet(tmp_path / "ms.parquet")
    source = resolve_source("file", interactions_file=str(tmp_path / "ms.parquet"), columns=MAPPING)
    with pytest.raises(InputError, match="milliseconds"):
        prepare_dataset(source, tmp_path / "out")
    frame = _user_frame().astype({"plays": str})
    frame.loc[7, "plays"] = "many"
    frame.to_parquet(tmp_path / "w.parquet")
    source = resolve_source("file", interactions_file=str(tmp_path / "w.parquet"), columns=MAPPING)
    with pytest.raises(InputError, match=r"non-numeric weight in column 'plays' \(e.g. 'many'\)"):
        prepare_dataset(source, tmp_path / "out")


# ------------------------------------------------------------------------------------------
# Synthetic
# ------------------------------------------------------------------------------------------

SMALL = {"n_users": 300, "n_items": 500, "n_interactions": 20_000, "n_clusters": 5}


def test_synthetic_is_deterministic_and_sized(tmp_path):
    a = generate_synthetic(tmp_path / "a", seed=7, chunk_rows=6_000, **SMALL)
    generate_synthetic(tmp_path / "b", seed=7, chunk_rows=6_000, **SMALL)
    generate_synthetic(tmp_path / "c", seed=8, chunk_rows=6_000, **SMALL)
    assert a["rows_written"] == 20_000
    for name in ("interactions.parquet", "users.parquet", "items.parquet"):
        ta, tb = pq.read_table(tmp_path / "a" / name), pq.read_table(tmp_path / "b" / name)
        assert ta.equals(tb), name
    inter = pq.read_table(tmp_path / "a" / "interactions.parquet").to_pandas()
    other = pq.read_table(tmp_path / "c" / "interactions.parquet").to_pandas()
    assert not inter.equals(other)
    assert len(inter) == 20_000
    assert inter["user_id"].between(1, 300).all() and inter["item_id"].between(1, 500).all()
    assert len(pq.read_table(tmp_path / "a" / "users.parquet")) == 300
    items = pq.read_table(tmp_path / "a" / "items.parquet").to_pandas()
    assert len(items) == 500
    assert items["item_genres"].map(len).min() >= 1
    assert items["title"].iloc[0].startswith("Synthetic item 1 (")


def test_synthetic_structure(tmp_path):
    generate_synthetic(tmp_path, seed=3, **SMALL)
    inter = pd.read_parquet(tmp_path / "interactions.parquet")
    users = pd.read_parquet(tmp_path / "users.parquet").set_index("user_id")
    items = pd.read_parquet(tmp_path / "items.parquet").set_index("item_id")
    counts = inter["item_id"].value_counts()
    top = counts.iloc[: max(1, len(items) // 100)].sum() / len(inter)
    assert top > 0.15  # top 1% of items: > 15x their uniform share
    same = (
        users.loc[inter["user_id"], "user_cluster"].to_numpy()
        == items.loc[inter["item_id"], "item_cluster"].to_numpy()
    )
    assert same.mean() > 0.6  # users mostly pick items of their taste cluster
    days = inter["ts"].dt.floor("D")
    assert days.min() >= pd.Timestamp("2020-01-01") and days.max() < pd.Timestamp("2023-01-01")


def test_synthetic_source_end_to_end(tmp_path):
    source = resolve_source("synthetic", synthetic={**SMALL, "seed": 5})
    info = prepare_dataset(source, tmp_path / "out")
    df = read_splits(tmp_path / "out")
    assert len(df) == 20_000
    assert info["user_features"] == ["user_age", "user_gender", "user_occupation"]
    assert info["item_features"] == ["item_genres", "item_year"]
    assert "user_cluster" not in df.columns and "item_cluster" not in df.columns
    assert source.fetch() == source.directory  # cached


def test_synthetic_bad_params():
    with pytest.raises(InputError, match=r"unknown keys \['n_user'\] in synthetic parameters"):
        resolve_source("synthetic", synthetic={"n_user": 10})
    with pytest.raises(InputError, match="n_clusters=50 exceeds n_items=10"):
        resolve_source("synthetic", synthetic={"n_items": 10, "n_clusters": 50})
    with pytest.raises(InputError, match="must be an integer"):
        resolve_source("synthetic", synthetic={"n_users": "many"})


def test_scaled_shape_follows_movielens_proportions():
    from data.synthetic import scaled_shape

    assert scaled_shape(25_000_095) == (162_541, 59_047)  # MovieLens-25M itself
    users, items = scaled_shape(1_000_209)  # MovieLens-1M: 6,040 users x 3,706 movies
    assert 6_000 <= users <= 7_000 and 3_500 <= items <= 4_000
    assert scaled_shape(10_000_000, n_users=300_000, n_items=50_000) == (300_000, 50_000)
    assert scaled_shape(10_000_000, n_users=1234)[0] == 1234
    users, items = scaled_shape(5_000)  # small: enough room for every user's rows, twice
    assert users >= 50 and users * items * 0.5 >= 2 * 5_000


def test_distinct_pairs_generator_never_repeats_a_pair_and_keeps_the_structure(tmp_path):
    from data.synthetic import scaled_shape

    users, items = scaled_shape(60_000)
    params = {
        "n_users": users,
        "n_items": items,
        "n_interactions": 60_000,
        "n_clusters": 5,
        "seed": 11,
        "distinct_pairs": True,
        "chunk_rows": 7_000,
    }
    manifest = generate_synthetic(tmp_path / "a", **params)
    generate_synthetic(tmp_path / "b", **params)  # the same parameters: the same files
    assert manifest["rows_written"] == 60_000 and manifest["distinct_pairs"] == 1
    a = pq.read_table(tmp_path / "a" / "interactions.parquet")
    assert a.equals(pq.read_table(tmp_path / "b" / "interactions.parquet"))
    inter = a.to_pandas()
    assert len(inter) == 60_000
    assert not inter.duplicated(["user_id", "item_id"]).any()
    per_user = inter.groupby("user_id").size()
    assert per_user.max() <= items // 2  # at most half the catalogue per user
    assert per_user.max() > 2 * per_user.median()  # heavy users, as in ratings data
    counts = inter["item_id"].value_counts()
    assert counts.iloc[: max(1, items // 100)].sum() / len(inter) > 0.03  # popular head
    users_table = pd.read_parquet(tmp_path / "a" / "users.parquet").set_index("user_id")
    items_table = pd.read_parquet(tmp_path / "a" / "items.parquet").set_index("item_id")
    same = (
        users_table.loc[inter["user_id"], "user_cluster"].to_numpy()
        == items_table.loc[inter["item_id"], "item_cluster"].to_numpy()
    )
    assert same.mean() > 2 / 5  # taste clusters survive the redraws (random picks: 1 in 5)


def test_distinct_pairs_must_fit_and_are_part_of_the_cache_key():
    with pytest.raises(InputError, match="do not fit"):
        resolve_source(
            "synthetic",
            synthetic={"n_users": 10, "n_items": 20, "n_interactions": 101, "distinct_pairs": 1},
        )
    plain = resolve_source("synthetic", synthetic={**SMALL, "seed": 5})
    distinct = resolve_source("synthetic", synthetic={**SMALL, "seed": 5, "distinct_pairs": True})
    assert distinct.params["distinct_pairs"] == 1 and plain.params["distinct_pairs"] == 0
    assert plain.directory != distinct.directory
    assert plain.directory.name == "u300-i500-n20000-c5-s5-v1"  # caches made before still match


def test_flow_synthetic_parameters_scale_with_rows_or_are_given():
    from reclab.training import RunParameters, synthetic_flow_params, validate_run_parameters

    params = synthetic_flow_params(1_000_000, seed=3)
    assert params["distinct_pairs"] == 1 and params["seed"] == 3
    assert (params["n_users"], params["n_items"]) == (6_502, 3_707)
    given = synthetic_flow_params(1_000_000, n_users=2_000, n_items=900)
    assert (given["n_users"], given["n_items"]) == (2_000, 900)

    def checked(**synthetic):
        params = RunParameters(
            dataset="synthetic",
            data_dir="",
            interactions_file="",
            columns="",
            synthetic_interactions=synthetic.pop("rows", 50_000),
            row_sampling=100.0,
            training_end_date="",
            validation_end_date="",
            models="popularity",
            grid="quick",
            grid_file="",
            k=10,
            validation_metric="ndcg_at_10",
            bootstrap_samples=10,
            seed=42,
            **synthetic,
        )
        return validate_run_parameters(params)

    source = checked(synthetic_users=400, synthetic_items=300).source
    assert (source.params["n_users"], source.params["n_items"]) == (400, 300)
    with pytest.raises(InputError, match="--synthetic-users must be >= 0"):
        checked(synthetic_users=-1)
    with pytest.raises(InputError, match="do not fit"):
        checked(rows=100_000, synthetic_users=10, synthetic_items=20)
