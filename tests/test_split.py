"""Tests of row sampling and the train/valid/test split, checked against pandas by hand.

MovieLens-100k is read from the shared data directory beside the repository
(``../shared/data``, override with ``RECLAB_DATA_DIR``); nothing is downloaded.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data import prepare_dataset, resolve_source, validate_split_params
from reclab.errors import InputError

SPLITS = ("train", "valid", "test")
KEY = ["user_id", "item_id", "ts"]


def ml_dir() -> Path:
    """The shared ``ml-100k`` directory (the test is skipped when it is absent)."""
    env = os.environ.get("RECLAB_DATA_DIR", "").strip()
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    path = root if (root / "u.data").is_file() else root / "ml-100k"
    if not (path / "u.data").is_file():
        pytest.skip(f"MovieLens-100k files not found under {root}; set RECLAB_DATA_DIR")
    return path


@pytest.fixture(scope="module")
def ml_source():
    return resolve_source("movielens-100k", data_dir=str(ml_dir()))


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    """Raw u.data read by pandas, with ts as naive UTC datetimes."""
    df = pd.read_csv(ml_dir() / "u.data", sep="\t", names=["user_id", "item_id", "weight", "t"])
    return df.assign(ts=pd.to_datetime(df["t"], unit="s"), weight=df["weight"].astype(float))


def read_split(out: Path, split: str) -> pd.DataFrame:
    return pd.read_parquet(out / f"{split}.parquet")


def as_keys(df: pd.DataFrame) -> pd.DataFrame:
    return df[KEY].sort_values(KEY).reset_index(drop=True)


def expected_windows(ratings: pd.DataFrame, train_end: str, valid_end: str) -> dict:
    t1, t2 = pd.Timestamp(train_end), pd.Timestamp(valid_end)
    return {
        "train": ratings[ratings["ts"] < t1],
        "valid": ratings[(ratings["ts"] >= t1) & (ratings["ts"] < t2)],
        "test": ratings[ratings["ts"] >= t2],
    }


def check_windows(out: Path, info: dict, ratings: pd.DataFrame) -> None:
    """Every row of u.data lands in exactly the window the boundary rule gives it."""
    want = expected_windows(ratings, info["training_end_date"], info["validation_end_date"])
    assert sum(len(w) for w in want.values()) == len(ratings)
    for split in SPLITS:
        got = read_split(out, split)
        pd.testing.assert_frame_equal(as_keys(got), as_keys(want[split]))
        assert info[split]["rows"] == len(want[split])
        assert info[split]["users"] == want[split]["user_id"].nunique()
        assert info[split]["items"] == want[split]["item_id"].nunique()


def test_default_dates_movielens(ml_source, ratings, tmp_path):
    info = prepare_dataset(ml_source, tmp_path / "out")
    assert info["method"] == "time_window"
    assert info["training_end_date"] == "1998-03-07"
    assert info["validation_end_date"] == "1998-03-31"
    check_windows(tmp_path / "out", info, ratings)
    train = read_split(tmp_path / "out", "train")
    valid = read_split(tmp_path / "out", "valid")
    test = read_split(tmp_path / "out", "test")
    assert train["ts"].max() < pd.Timestamp("1998-03-07") <= valid["ts"].min()
    assert valid["ts"].max() < pd.Timestamp("1998-03-31") <= test["ts"].min()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp leftovers


def test_explicit_dates(ml_source, ratings, tmp_path):
    info = prepare_dataset(
        ml_source,
        tmp_path / "out",
        training_end_date="1998-01-01",
        validation_end_date="1998-02-01",
    )
    assert (info["training_end_date"], info["validation_end_date"]) == ("1998-01-01", "1998-02-01")
    check_windows(tmp_path / "out", info, ratings)


def test_one_date_derives_the_other(ml_source, tmp_path):
    info = prepare_dataset(ml_source, tmp_path / "a", training_end_date="1998-02-01")
    assert (info["training_end_date"], info["validation_end_date"]) == ("1998-02-01", "1998-03-31")
    info = prepare_dataset(ml_source, tmp_path / "b", validation_end_date="1998-04-10")
    assert (info["training_end_date"], info["validation_end_date"]) == ("1998-03-07", "1998-04-10")
    with pytest.raises(InputError, match="validation_end_date=1998-03-31 is not after"):
        prepare_dataset(ml_source, tmp_path / "c", training_end_date="1998-04-01")


def test_sampling_is_repeatable(ml_source, tmp_path):
    a = prepare_dataset(ml_source, tmp_path / "a", row_sampling=10, seed=1)
    b = prepare_dataset(ml_source, tmp_path / "b", row_sampling=10, seed=1)
    c = prepare_dataset(ml_source, tmp_path / "c", row_sampling=10, seed=2)
    assert a["rows_sampled"] == b["rows_sampled"]
    assert 9_000 <= a["rows_sampled"] <= 11_000 and 9_000 <= c["rows_sampled"] <= 11_000
    for split in SPLITS:
        keys_a = as_keys(read_split(tmp_path / "a", split))
        pd.testing.assert_frame_equal(keys_a, as_keys(read_split(tmp_path / "b", split)))
    all_a = pd.concat([read_split(tmp_path / "a", s) for s in SPLITS])
    all_c = pd.concat([read_split(tmp_path / "c", s) for s in SPLITS])
    overlap = len(all_a.merge(all_c, on=KEY)) / len(all_a)
    assert overlap < 0.2  # independent 10% samples share about 10% of rows
    assert a["row_sampling"] == 10.0 and a["seed"] == 1


@pytest.mark.parametrize("pct", [0, 100])
def test_zero_and_hundred_mean_no_sampling(ml_source, tmp_path, pct):
    info = prepare_dataset(ml_source, tmp_path / "out", row_sampling=pct)
    assert info["rows_sampled"] == info["rows_source"] == 100_000
    assert sum(info[s]["rows"] for s in SPLITS) == 100_000


def test_validate_split_params():
    ok = validate_split_params(25, "1998-01-01", "1998-02-01", seed=3)
    assert ok == {
        "row_sampling": 25.0,
        "sampling": True,
        "training_end_date": "1998-01-01",
        "validation_end_date": "1998-02-01",
    }
    assert validate_split_params(0, "", None)["sampling"] is False
    for bad in (-1, 100.5, math.nan, "10", True):
        with pytest.raises(InputError, match="row_sampling"):
            validate_split_params(bad)
    for bad in ("1998/03/07", "07-03-1998", "1998-3-7", "1998-02-30"):
        with pytest.raises(InputError, match="yyyy-mm-dd"):
            validate_split_params(100, training_end_date=bad)
    with pytest.raises(InputError, match="must be after training_end_date"):
        validate_split_params(100, "1998-03-07", "1998-03-07")
    with pytest.raises(InputError, match="must be after training_end_date"):
        validate_split_params(100, "1998-03-31", "1998-03-07")
    with pytest.raises(InputError, match="seed"):
        validate_split_params(100, seed=-1)


def test_validation_before_training_in_prepare(ml_source, tmp_path):
    with pytest.raises(InputError, match="must be after training_end_date"):
        prepare_dataset(
            ml_source,
            tmp_path / "o",
            training_end_date="1998-03-01",
            validation_end_date="1998-02-01",
        )


def test_empty_window_error(ml_source, tmp_path):
    with pytest.raises(InputError) as err:
        prepare_dataset(
            ml_source,
            tmp_path / "o",
            training_end_date="1999-01-01",
            validation_end_date="1999-02-01",
        )
    msg = str(err.value)
    assert "valid window (1999-01-01 <= ts < 1999-02-01) has no rows" in msg
    assert "1997-09-20 03:05:10 to 1998-04-22 23:10:38" in msg
    with pytest.raises(InputError, match=r"train window \(ts < 1990-01-01\) has no rows"):
        prepare_dataset(
            ml_source,
            tmp_path / "o",
            training_end_date="1990-01-01",
            validation_end_date="1998-01-01",
        )
    # Nothing half-done: no output directory, no temporary directory left behind.
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------
# Sources without timestamps
# ------------------------------------------------------------------------------------------


@pytest.fixture
def playcounts(tmp_path) -> Path:
    """A play-count file without timestamps: 400 users with 1 to 40 rows each."""
    rng = np.random.default_rng(0)
    sizes = np.concatenate([[1, 2, 3], rng.integers(5, 40, 397)])
    users = np.repeat(np.arange(len(sizes)), sizes)
    frame = pd.DataFrame(
        {
            "listener": users,
            "artist": [f"a{i}" for i in rng.integers(0, 300, len(users))],
            "plays": rng.integers(1, 100, len(users)),
        }
    )
    path = tmp_path / "plays.csv"
    frame.to_csv(path, index=False)
    return path


PLAY_COLUMNS = {"user": "listener", "item": "artist", "weight": "plays"}


def split_of(out: Path) -> pd.DataFrame:
    return pd.concat(
        [read_split(out, s).assign(split=s) for s in SPLITS], ignore_index=True
    ).sort_values(["user_id", "item_id", "weight", "split"], ignore_index=True)


def test_random_per_user_split(playcounts, tmp_path, caplog):
    source = resolve_source("file", interactions_file=str(playcounts), columns=PLAY_COLUMNS)
    assert source.has_timestamps is False
    with caplog.at_level(logging.WARNING, logger="data.prepare"):
        info = prepare_dataset(source, tmp_path / "a", seed=11)
    assert info["method"] == "random_per_user"
    assert info["training_end_date"] is None and info["validation_end_date"] is None
    assert any("NO TIMESTAMPS" in r.getMessage() for r in caplog.records)
    a = split_of(tmp_path / "a")
    n = len(pd.read_csv(playcounts))
    assert len(a) == n and a["ts"].isna().all()
    shares = a["split"].value_counts(normalize=True)
    assert abs(shares["train"] - 0.8) < 0.03
    assert abs(shares["valid"] - 0.1) < 0.03
    assert abs(shares["test"] - 0.1) < 0.03
    # Every user keeps at least one row in train; the 1-, 2- and 3-row users keep most.
    assert set(a.loc[a["split"] == "train", "user_id"]) == set(a["user_id"])
    assert (a.loc[a["user_id"] == 0, "split"] == "train").all()
    assert (a.loc[a["user_id"] == 1, "split"] == "train").all()
    # Same seed -> same split; another seed -> another split.
    prepare_dataset(source, tmp_path / "b", seed=11)
    prepare_dataset(source, tmp_path / "c", seed=12)
    pd.testing.assert_frame_equal(a, split_of(tmp_path / "b"))
    assert not a["split"].equals(split_of(tmp_path / "c")["split"])


def test_dates_without_timestamps_rejected(playcounts, tmp_path):
    source = resolve_source("file", interactions_file=str(playcounts), columns=PLAY_COLUMNS)
    with pytest.raises(InputError, match="no timestamp column"):
        prepare_dataset(source, tmp_path / "out", training_end_date="2020-01-01")
