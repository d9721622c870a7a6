"""What every benchmark worker shares: the input/output files and the peak-memory probe.

Each measured run (one of our families, or a reference implementation) runs in a fresh
subprocess so memory peaks never mix. The parent writes one input directory and each worker
writes one output directory:

    inputs/train.parquet   user_idx, item_idx, weight, ts (epoch s, NaN when absent): encoded train
    inputs/users.parquet   user_idx: the users to recommend for (warm users of valid and test)
    inputs/meta.json       n_users, n_items, k
    inputs/item_ids.npy    raw item id of each encoded item (tie-breaks of the baselines)
    <out>/recs.parquet     user_idx, rank (0-based), item_idx, score: the top-k lists
    <out>/stats.json       fit_seconds, recommend_seconds, peak_rss_mb, memory_method, notes

Every worker (``families.py --worker`` and each ``reference_*.py``) reads its command line with
:func:`reference_args`, fits and recommends inside one :class:`Measurement` and writes with
:func:`write_outputs`; libraries that return long ``(user, item, score)`` rows turn them into
the top-k matrix with :func:`top_k_matrix`.

This module needs only the standard library, NumPy and pandas (with pyarrow), so the reference
virtual environment (``benchmarks/.venv-reference``) imports it too.

Peak memory is an RSS delta: the resident set of the worker process and of its child processes
(Spark's JVM), sampled from ``/proc`` every 10 ms while fit and recommend run, minus the RSS just
before fit (after imports and data loading). When the process's own ``ru_maxrss`` high-water mark
rises during the phase it is exact and replaces the sampled peak if larger, so short spikes
between samples are still caught for the Python process itself.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

MEMORY_METHOD = "RSS delta over the pre-fit RSS (process + children; /proc every 10 ms + ru_maxrss)"
_PAGE = os.sysconf("SC_PAGE_SIZE")
T = TypeVar("T")


def _rss_bytes(pid: int | str) -> int:
    """Resident set size of one process from ``/proc/<pid>/statm`` (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _descendants(pid: int) -> list[int]:
    """All descendant process ids, read from ``/proc/<pid>/task/*/children``."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as handle:
                    children = [int(c) for c in handle.read().split()]
            except OSError:
                continue
            found.extend(children)
            stack.extend(children)
    return found


def tree_rss_bytes() -> int:
    """RSS of this process plus all its descendants, in bytes."""
    pid = os.getpid()
    return _rss_bytes(pid) + sum(_rss_bytes(child) for child in _descendants(pid))


class PeakMemory:
    """Context manager measuring the peak RSS increase of the process tree over its entry value.

    Attributes:
        peak_mb: Peak RSS minus the RSS at entry, in MiB (set on exit).
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak_mb = float("nan")
        self._stop = threading.Event()
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, tree_rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._baseline = tree_rss_bytes()
        self._maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self._peak = self._baseline
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        peak = max(self._peak, tree_rss_bytes())
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if maxrss > self._maxrss_before:  # the high-water mark rose during the phase: exact
            peak = max(peak, maxrss)
        self.peak_mb = (peak - self._baseline) / 2**20


class Measurement(PeakMemory):
    """Peak memory over a ``with`` block, and the wall time of the fit and recommend calls in it.

    ``fit`` and ``recommend`` call a function and add its wall time to ``fit_seconds`` /
    ``recommend_seconds`` (a library recommending in batches calls ``recommend`` once a batch);
    anything else in the block, such as input preparation, counts towards memory only.

    Attributes:
        fit_seconds: Wall time of the ``fit`` calls.
        recommend_seconds: Wall time of the ``recommend`` calls.
        peak_mb: Peak RSS increase over the block, in MiB (set on exit).
    """

    def __init__(self, interval: float = 0.01) -> None:
        super().__init__(interval)
        self.fit_seconds = 0.0
        self.recommend_seconds = 0.0

    def __enter__(self) -> Measurement:
        super().__enter__()
        return self

    def fit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)``, timed as fit; return its result."""
        result, seconds = timed(fn, *args, **kwargs)
        self.fit_seconds += seconds
        return result

    def recommend(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)``, timed as recommend; return its result."""
        result, seconds = timed(fn, *args, **kwargs)
        self.recommend_seconds += seconds
        return result


def reference_args(
    doc: str, helps: dict[str, str] | None = None, **defaults: Any
) -> argparse.Namespace:
    """Parse a worker's command line: ``INPUT_DIR OUT_DIR`` and one option per default.

    Each keyword becomes an option named with dashes (``reg_param=0.05`` is ``--reg-param``) of
    the default's type; a ``False`` default is a flag (``no_reject=False`` is ``--no-reject``).

    Args:
        doc: The script's docstring; its first line describes the command.
        helps: Help text of some options, by keyword name.
        **defaults: The options and their defaults.

    Returns:
        The parsed arguments: ``input_dir``, ``out_dir`` and the options.
    """
    helps = helps or {}
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("input_dir")
    parser.add_argument("out_dir")
    for name, default in defaults.items():
        flag = "--" + name.replace("_", "-")
        if default is False:
            parser.add_argument(flag, action="store_true", help=helps.get(name))
        else:
            parser.add_argument(flag, type=type(default), default=default, help=helps.get(name))
    return parser.parse_args()


def read_inputs(input_dir: str | Path) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """The encoded train interactions, the users to recommend for, and ``meta.json``."""
    input_dir = Path(input_dir)
    train = pd.read_parquet(input_dir / "train.parquet")
    users = pd.read_parquet(input_dir / "users.parquet")["user_idx"].to_numpy(dtype=np.int64)
    meta = json.loads((input_dir / "meta.json").read_text(encoding="utf-8"))
    return train, users, meta


def write_outputs(
    out_dir: str | Path,
    users: np.ndarray,
    items: np.ndarray,
    scores: np.ndarray,
    measurement: Measurement,
    notes: str = "",
) -> None:
    """Write ``recs.parquet`` (one row per non-padding entry) and ``stats.json``.

    Args:
        out_dir: Output directory (created).
        users: Encoded users, shape (n,).
        items: Encoded items, shape (n, k), best first; -1 is padding.
        scores: Scores, shape (n, k); an entry with a non-finite score (a masked train item
            that a library returned to fill the list) is padding too.
        measurement: Fit and recommend seconds (recommending for all ``users``) and the peak
            RSS increase over both, MiB.
        notes: Free text about what was timed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = np.asarray(items, dtype=np.int64)
    n, k = items.shape
    scores = np.asarray(scores, dtype=np.float64)
    keep = (items.ravel() >= 0) & np.isfinite(scores.ravel())
    pd.DataFrame(
        {
            "user_idx": np.repeat(users, k)[keep],
            "rank": np.tile(np.arange(k), n)[keep],
            "item_idx": items.ravel()[keep],
            "score": scores.ravel()[keep],
        }
    ).to_parquet(out_dir / "recs.parquet", index=False)
    stats = {
        "fit_seconds": measurement.fit_seconds,
        "recommend_seconds": measurement.recommend_seconds,
        "peak_rss_mb": measurement.peak_mb,
        "memory_method": MEMORY_METHOD,
        "notes": notes,
    }
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")


def _rows_of(users: np.ndarray, row_users: np.ndarray, what: str) -> np.ndarray:
    """Position in ``users`` of each entry of ``row_users`` (``what`` names them in errors)."""
    position = pd.Series(np.arange(len(users)), index=users)
    rows = position.reindex(np.asarray(row_users)).to_numpy()
    if np.isnan(rows.astype(np.float64)).any():
        raise ValueError(f"{what} lists users that were not asked for")
    return rows.astype(np.int64)


def top_k_matrix(
    users: np.ndarray,
    k: int,
    row_users: np.ndarray,
    row_items: np.ndarray,
    row_scores: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k matrices from long recommendation rows listed best first within each user.

    Args:
        users: The users asked for, shape (n,).
        k: List length.
        row_users: User of each row; a user's rows are best first, at most ``k`` of them.
        row_items: Item of each row.
        row_scores: Score of each row.

    Returns:
        ``(items, scores)``, shape (n, k), rows in ``users`` order; -1 / -inf padded.

    Raises:
        ValueError: If a row's user was not asked for.
    """
    rank = pd.Series(np.asarray(row_users)).groupby(np.asarray(row_users)).cumcount().to_numpy()
    rows = _rows_of(users, row_users, "the recommendations")
    items = np.full((len(users), k), -1, dtype=np.int64)
    scores = np.full((len(users), k), -np.inf)
    items[rows, rank] = np.asarray(row_items)
    scores[rows, rank] = np.asarray(row_scores)
    return items, scores


def dense_top_k(
    users: np.ndarray, k: int, scores_of: Callable[[np.ndarray], np.ndarray], batch: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of dense score rows computed one user batch at a time (as a plain user would).

    Args:
        users: The users asked for.
        k: List length.
        scores_of: Dense scores ``(len(batch), n_items)`` of a batch of users, their train
            items already at ``-inf``.
        batch: Users per batch.

    Returns:
        ``(items, scores)``, shape (len(users), k), best first.
    """
    items, scores = [], []
    for start in range(0, len(users), batch):
        dense = scores_of(users[start : start + batch])
        top = np.argpartition(-dense, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(dense, top, axis=1), axis=1)
        top = np.take_along_axis(top, order, axis=1)
        items.append(top)
        scores.append(np.take_along_axis(dense, top, axis=1))
    return np.vstack(items), np.vstack(scores)


def read_recs(out_dir: str | Path, users: np.ndarray, k: int) -> np.ndarray:
    """Top-k matrix (len(users), k) from ``recs.parquet``, rows in ``users`` order, -1 padded."""
    recs = pd.read_parquet(Path(out_dir) / "recs.parquet")
    recs = recs[recs["rank"] < k]
    items = np.full((len(users), k), -1, dtype=np.int64)
    rows = _rows_of(users, recs["user_idx"].to_numpy(), "recs.parquet")
    items[rows, recs["rank"].to_numpy()] = recs["item_idx"].to_numpy()
    return items


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """Call ``fn`` and return ``(result, seconds)``."""
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started
