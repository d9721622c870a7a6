"""The data rules of get_dataset, on small files written here, through real DuckDB.

Weights must be finite and non-negative; exact duplicate rows are kept once (with timestamps)
and counted; every evaluation window needs an evaluable user; whole-day split dates that cannot
work are refused with advice that does work.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data import prepare_dataset, resolve_source
from reclab.errors import InputError

COLUMNS = {"user": "customer", "item": "sku", "timestamp": "ts", "weight": "qty"}


def _events(n_users: int = 40, days: int = 30, per_user: int = 12, seed: int = 0) -> pd.DataFrame:
    """Users buying items over ``days`` days: each user has rows spread over the whole range."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    start = pd.Timestamp("2024-01-01", tz="UTC").value // 10**9
    return pd.DataFrame(
        {
            "customer": users,
            "sku": rng.integers(0, 60, len(users)),
            "ts": start + rng.integers(0, days * 86400, len(users)),
            "qty": rng.integers(1, 4, len(users)).astype(float),
        }
    )


def _prepare(tmp_path, frame: pd.DataFrame, columns: dict = COLUMNS, **kwargs) -> dict:
    # Parquet keeps NaN and infinite weights as numbers (CSV would write NaN as empty).
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({name: pa.array(frame[name].to_numpy()) for name in frame}), path)
    source = resolve_source("file", interactions_file=str(path), columns=columns)
    return prepare_dataset(source, tmp_path / "split", **kwargs)


@pytest.mark.parametrize(
    ("weight", "message"),
    [
        (
            -2.0,
            r"1 of 480 rows of the file source have a negative weight in the weight column "
            r"'qty' \(lowest -2.0\).*must be >= 0",
        ),
        (float("nan"), r"1 of 480 rows .* missing, NaN or infinite weight .*e\.g\. nan"),
        (float("inf"), r"1 of 480 rows .* missing, NaN or infinite weight .*e\.g\. inf"),
    ],
)
def test_unusable_weights_are_refused_with_how_to_fix(tmp_path, weight, message) -> None:
    frame = _events()
    frame.loc[7, "qty"] = weight
    with pytest.raises(InputError, match=message) as raised:
        _prepare(tmp_path, frame)
    assert "remove the weight mapping" in str(raised.value)


def test_exact_duplicates_are_kept_once_and_counted(tmp_path) -> None:
    frame = _events()
    doubled = pd.concat([frame, frame.iloc[:5], frame.iloc[:2]], ignore_index=True)
    info = _prepare(tmp_path, doubled)
    assert info["duplicates_dropped"] == 7
    assert any(note.startswith("7 exact duplicate rows") for note in info["notes"])
    written = sum(info[split]["rows"] for split in ("train", "valid", "test"))
    assert written == len(frame.drop_duplicates())
    # Same user, item and time but another weight is another row, kept.
    changed = pd.concat([frame, frame.iloc[:1].assign(qty=9.0)], ignore_index=True)
    assert _prepare(tmp_path, changed)["duplicates_dropped"] == 0


def test_duplicates_without_timestamps_are_repeats_and_counted(tmp_path) -> None:
    frame = _events()[["customer", "sku"]]
    frame = pd.concat([frame, frame.iloc[:3]], ignore_index=True)
    repeats = len(frame) - len(frame.drop_duplicates())
    info = _prepare(tmp_path, frame, {"user": "customer", "item": "sku"})
    assert info["duplicates_dropped"] == 0
    assert any(f"{repeats} rows repeat another row exactly" in note for note in info["notes"])
    assert sum(info[s]["rows"] for s in ("train", "valid", "test")) == len(frame)


def test_one_day_of_data_is_refused_with_advice_that_works(tmp_path) -> None:
    frame = _events(days=1)
    with pytest.raises(InputError, match=r"covers only 1 day\(s\) \(2024-01-01, UTC\)") as raised:
        _prepare(tmp_path, frame)
    message = str(raised.value)
    assert "at least 3 different days" in message and "drop the timestamp" in message
    # The advice works: without the timestamp mapping the same file splits at random per user.
    no_time = {"user": "customer", "item": "sku", "weight": "qty"}
    assert _prepare(tmp_path, frame, no_time)["method"] == "random_per_user"


def test_colliding_default_dates_come_with_dates_that_work(tmp_path) -> None:
    frame = _events(days=30)
    # 95% of the rows on the last day: the 80th and 90th percentile days are the same day.
    last_day = pd.Timestamp("2024-01-30", tz="UTC").value // 10**9
    frame.loc[frame.index[: int(0.95 * len(frame))], "ts"] = last_day + 3600
    with pytest.raises(InputError, match="is not after training_end_date") as raised:
        _prepare(tmp_path, frame)
    train_end, valid_end = re.search(
        r"--training-end-date (\d{4}-\d\d-\d\d) --validation-end-date (\d{4}-\d\d-\d\d)",
        str(raised.value),
    ).groups()
    info = _prepare(tmp_path, frame, training_end_date=train_end, validation_end_date=valid_end)
    assert all(info[split]["rows"] > 0 for split in ("train", "valid", "test"))


def test_a_window_without_evaluable_users_stops_before_training(tmp_path) -> None:
    frame = _events(days=30)
    # Validation users (Jan 25 - 27) are new users: nobody there is in train.
    start = pd.Timestamp("2024-01-25", tz="UTC").value // 10**9
    in_valid = (frame["ts"] >= start) & (frame["ts"] < start + 3 * 86400)
    frame.loc[in_valid, "customer"] = frame.loc[in_valid, "customer"] + 1000
    with pytest.raises(InputError, match="the validation window") as raised:
        _prepare(tmp_path, frame, training_end_date="2024-01-25", validation_end_date="2024-01-28")
    message = str(raised.value)
    assert "no evaluable user" in message and "move --training-end-date earlier" in message


def test_evaluable_users_and_thin_windows_are_in_the_split_info(tmp_path) -> None:
    info = _prepare(tmp_path, _events(n_users=25))
    evaluable = info["evaluable_users"]
    assert 0 < evaluable["valid"] < 30 and 0 < evaluable["test"] < 30
    assert any("the validation window has only" in c for c in info["caveats"])
    assert f"validation window: {evaluable['valid']} evaluable users of" in " ".join(info["notes"])
