"""Pre-computed recommendations: the winner's top-K for every known user, as partitioned parquet.

The cache that "recs at reasonable scale" serves from: one row per (user, rank) with raw ids,
hive-partitioned by ``bucket = user_idx % n_buckets`` so a reader can load one slice. Files are
written into a temporary sibling directory that is renamed into place only when complete, so a
failed run never leaves a half-written cache that looks like a result.

A ``--scores-dir`` shared between runs is claimed by one run in its ``start`` step
(:func:`claim_scores_location`: an atomic ``mkdir`` holding a claim file), so a second run naming
the same directory is refused up front instead of failing after all training; the claiming
run's ``batch_score`` replaces the claimed directory with the finished cache in one rename.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reclab.errors import InputError

logger = logging.getLogger(__name__)

COLUMNS = ("user_id", "rank", "item_id", "score")
CLAIM_FILE = ".reclab-claim"


def claim_scores_location(location: str, owner: str, previous_owner: str | None = None) -> None:
    """Reserve a batch-scores location for one run before any training.

    Local directories are claimed with an atomic ``mkdir`` holding ``.reclab-claim`` (the owning
    run), so of two runs started together exactly one gets the directory. S3 has no atomic
    claim: the prefix must be empty now, and is checked again before the upload.

    Args:
        location: The ``--scores-dir`` value: a local path or ``s3://bucket/prefix``.
        owner: Who claims it, e.g. ``"TrainFlow/123"``.
        previous_owner: A run this one resumes; its claim is taken over.

    Raises:
        InputError: If the location already exists (or is claimed by another run), saying what
            to do.
    """
    if location.startswith("s3://"):
        _refuse_non_empty_s3(location)
        return
    path = Path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() and _rename_claimed_directory(path, owner):
        return
    claim = path / CLAIM_FILE
    holder = claim.read_text().strip() if claim.is_file() else None
    if holder is not None and holder in (owner, previous_owner):
        claim.write_text(owner)
        return
    what = (
        f"is claimed by run {holder} (a run still going, or one that failed before batch_score)"
        if holder
        else "already exists"
    )
    raise InputError(
        f"--scores-dir {location} {what}; batch scores are never overwritten and two runs "
        "never share one. Pass a new directory, or leave --scores-dir out to write beside "
        "the run's artifacts, or remove the directory if nothing uses it."
    )


def _rename_claimed_directory(path: Path, owner: str) -> bool:
    """Create ``path`` with its claim file inside in one atomic step; False if another won.

    A ``mkdir`` followed by writing the claim left a window in which a second run found the
    directory without its claim (and said "already exists" instead of naming the owner): two
    runs started together hit it 3 ms apart. The directory is built beside the target and
    renamed into place, so it never exists without its claim; a rename onto a directory that
    another run has just claimed fails, since that one is not empty.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.claim-", dir=path.parent))
    try:
        os.chmod(staging, 0o755)
        (staging / CLAIM_FILE).write_text(owner)
        os.rename(staging, path)
        return True
    except OSError:
        return False
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _refuse_non_empty_s3(location: str) -> None:
    from metaflow import S3

    with S3(s3root=location) as s3:
        existing = s3.list_recursive()
    if existing:
        raise InputError(
            f"--scores-dir {location} already holds {len(existing)} objects; batch scores are "
            "never overwritten. Pass a new prefix, or leave --scores-dir out to write beside "
            "the run's artifacts."
        )


@dataclass(frozen=True)
class BatchScores:
    """Where the cache was written and how much it holds."""

    location: str
    rows: int
    users: int
    k: int
    n_buckets: int


def default_scores_location(
    datastore_type: str, datastore_root: str, flow_name: str, run_id: str
) -> str:
    """``<datastore root>/<flow>/<run id>/batch_scores``, beside the run's own artifacts."""
    root = str(datastore_root).rstrip("/")
    if datastore_type == "local":
        return str(Path(root) / flow_name / str(run_id) / "batch_scores")
    return f"{root}/{flow_name}/{run_id}/batch_scores"


def write_batch_scores(
    bundle,
    out_dir: str | Path,
    k: int = 10,
    n_buckets: int = 8,
    batch_size: int = 4096,
    claim: str | None = None,
) -> BatchScores:
    """Write the top-k of every known train user to ``out_dir/bucket=<b>/part-0.parquet``.

    Args:
        bundle: A :class:`reclab.bundle.ModelBundle` (model, id maps).
        out_dir: Final directory; it must not exist yet, or hold only this run's claim.
        k: Items per user (fewer where fewer can be recommended: padding is dropped).
        n_buckets: Hive partitions, by ``user_idx % n_buckets``.
        batch_size: Users per ``recommend`` call.
        claim: The owner that claimed ``out_dir`` with :func:`claim_scores_location`, or None
            for a directory nobody claimed.

    Returns:
        What was written.

    Raises:
        InputError: If k or n_buckets is below 1, ``out_dir`` already exists (unclaimed), or it
            is not claimed by ``claim``.
    """
    for name, value in (("k", k), ("n_buckets", n_buckets), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise InputError(f"{name} must be an integer >= 1, got {value!r}")
    out_dir = Path(out_dir)
    claim_file = out_dir / CLAIM_FILE
    if claim is not None:
        holder = claim_file.read_text().strip() if claim_file.is_file() else None
        if holder != claim or any(p.name != CLAIM_FILE for p in out_dir.iterdir()):
            raise InputError(
                f"{out_dir} is not the empty directory claimed by {claim} (claim: {holder}); "
                "batch scores are never overwritten"
            )
    elif out_dir.exists():
        raise InputError(f"{out_dir} already exists; batch scores are never overwritten")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        rows, users = _write(bundle, staging, k, n_buckets, batch_size)
        if claim is not None:
            # The claimed directory is now empty: rename replaces it in one step.
            claim_file.unlink()
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BatchScores(str(out_dir), rows, users, k, n_buckets)


def _write(bundle, staging: Path, k: int, n_buckets: int, batch_size: int) -> tuple[int, int]:
    model = bundle.model
    n_users = len(bundle.user_map)
    user_ids = bundle.user_map.to_raw(np.arange(n_users))
    writers: dict[int, pq.ParquetWriter] = {}
    rows = 0
    started = time.perf_counter()
    try:
        for start in range(0, n_users, batch_size):
            user_idx = np.arange(start, min(start + batch_size, n_users), dtype=np.int64)
            items, scores = model.recommend(user_idx, k, exclude_seen=True)
            user_pos, rank_pos = np.nonzero(items >= 0)
            frame = pd.DataFrame(
                {
                    "user_id": user_ids[user_idx[user_pos]],
                    "rank": (rank_pos + 1).astype(np.int32),
                    "item_id": bundle.item_map.to_raw(items[user_pos, rank_pos]),
                    "score": scores[user_pos, rank_pos].astype(np.float32),
                }
            )
            buckets = user_idx[user_pos] % n_buckets
            for bucket in np.unique(buckets):
                table = pa.Table.from_pandas(frame[buckets == bucket], preserve_index=False)
                if bucket not in writers:
                    directory = staging / f"bucket={int(bucket)}"
                    directory.mkdir()
                    writers[bucket] = pq.ParquetWriter(directory / "part-0.parquet", table.schema)
                writers[bucket].write_table(table)
            rows += len(frame)
            done = start + len(user_idx)
            elapsed = time.perf_counter() - started
            logger.info(
                "batch scores: %d/%d users, %d rows (%.0f users/s)",
                done,
                n_users,
                rows,
                done / elapsed if elapsed > 0 else float("inf"),
            )
    finally:
        for writer in writers.values():
            writer.close()
    return rows, n_users


def publish_batch_scores(
    bundle, location: str, k: int = 10, n_buckets: int = 8, claim: str | None = None
) -> BatchScores:
    """:func:`write_batch_scores` to a local directory or, for ``s3://`` locations, to S3.

    For S3 the cache is written to a local temporary directory first and uploaded with
    Metaflow's S3 client (the datastore's credentials and endpoint), one object per partition,
    after checking that the prefix is still empty (``claim`` is for local directories only).
    """
    if not location.startswith("s3://"):
        return write_batch_scores(bundle, location, k=k, n_buckets=n_buckets, claim=claim)
    from metaflow import S3

    _refuse_non_empty_s3(location)

    with tempfile.TemporaryDirectory(prefix="reclab-batch-scores-") as staging:
        written = write_batch_scores(bundle, Path(staging) / "scores", k=k, n_buckets=n_buckets)
        files = [
            (str(path.relative_to(written.location)), str(path))
            for path in sorted(Path(written.location).rglob("*.parquet"))
        ]
        with S3(s3root=location) as s3:
            s3.put_files(files)
    logger.info("batch scores: uploaded %d files to %s", len(files), location)
    return BatchScores(location, written.rows, written.users, k, n_buckets)


def read_batch_scores(location: str | Path) -> pd.DataFrame:
    """Read a cache written by :func:`write_batch_scores` (all buckets), sorted by user, rank."""
    frame = pq.read_table(str(location), partitioning="hive").to_pandas()
    frame["bucket"] = frame["bucket"].astype(int)
    return frame.sort_values(["user_id", "rank"]).reset_index(drop=True)
