"""Seeded synthetic interactions with known structure, for tests, demos and scale runs.

Real data sets are small (MovieLens-100k) or not redistributable; this generator produces data
of any size whose structure models can be checked against:

* item popularity follows a power law (Zipf, exponent ``ZIPF_EXPONENT``);
* users and items belong to latent taste clusters and users mostly pick items of their cluster,
  rating them higher;
* user features (age bucket, gender-like category, occupation-like category correlated with the
  cluster) and item features (genre list correlated with the cluster, release year, title);
* timestamps over ``START``..``END`` with drift: activity grows over time and the share of
  in-cluster choices falls from 85% to 60%.

Two ways to draw rows:

* ``distinct_pairs=False`` (the original generator, what ``benchmarks/families.py`` uses): every
  row is an independent draw, so a (user, item) pair can repeat, as in play logs. With Zipf
  popularity about half the rows of a MovieLens-sized catalogue repeat a pair.
* ``distinct_pairs=True`` (what the flow's ``synthetic`` dataset uses): each user gets a number
  of rows from their activity (largest-remainder shares of ``n_interactions``, at most half the
  catalogue per user) and never the same item twice, like a ratings file such as MovieLens. A
  repeated draw is redrawn: popularity-weighted for a few rounds, then uniformly.

:func:`scaled_shape` gives users and items for a row count in MovieLens proportions: 25M rows
are about 162k users x 59k items (MovieLens-25M), 1M rows about 6.5k users x 3.8k items
(MovieLens-1M has 6,040 x 3,706).

Everything is vectorised NumPy. Interactions are produced and written in chunks of about
``chunk_rows`` rows (one parquet row group each; with distinct pairs a chunk is a range of whole
users), so memory stays flat (well under 1 GB for 1M-row chunks) whatever ``n_interactions`` is.
The same parameters always give identical files.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data.source import check_mapping
from reclab.errors import InputError

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
MANIFEST_NAME = "manifest.json"
DEFAULT_PARAMS: dict[str, int] = {
    "n_users": 1000,
    "n_items": 1000,
    "n_interactions": 100_000,
    "n_clusters": 8,
    "seed": 42,
    "distinct_pairs": 0,
}
MAX_ENTITIES = 10_000_000
MAX_INTERACTIONS = 5_000_000_000
CHUNK_ROWS = 1_000_000

ZIPF_EXPONENT = 1.0
START = datetime(2020, 1, 1, tzinfo=UTC)
END = datetime(2023, 1, 1, tzinfo=UTC)
IN_CLUSTER_SHARE_START = 0.85
IN_CLUSTER_SHARE_END = 0.60

# MovieLens-25M (GroupLens, 2019): ratings, users and movies; the shape scaled_shape follows.
ML25M_ROWS, ML25M_USERS, ML25M_ITEMS = 25_000_095, 162_541, 59_047
# Items grow more slowly than rows: MovieLens-1M has 3,706 movies for 1,000,209 ratings, and
# ln(59,047 / 3,706) / ln(25,000,095 / 1,000,209) = 0.86.
ITEM_GROWTH_EXPONENT = 0.86
MIN_SCALED_USERS = 50
# With distinct pairs a user holds at most this share of the catalogue.
MAX_USER_CATALOGUE_SHARE = 0.5
# Repeated pairs are redrawn by popularity this many rounds, then uniformly.
POPULAR_REDRAW_ROUNDS = 4

AGE_BUCKETS = np.array([18, 25, 35, 45, 50, 56], dtype=np.int32)
AGE_PROBS = np.array([0.12, 0.32, 0.24, 0.14, 0.1, 0.08])
GENDERS = np.array(["F", "M", "X"])
GENDER_PROBS = np.array([0.48, 0.48, 0.04])
OCCUPATIONS = np.array(
    [
        "artist",
        "educator",
        "engineer",
        "executive",
        "healthcare",
        "lawyer",
        "programmer",
        "retired",
        "scientist",
        "student",
        "technician",
        "writer",
    ]
)
GENRES = np.array(
    [
        "Action",
        "Adventure",
        "Animation",
        "Children's",
        "Comedy",
        "Crime",
        "Documentary",
        "Drama",
        "Fantasy",
        "Film-Noir",
        "Horror",
        "Musical",
        "Mystery",
        "Romance",
        "Sci-Fi",
        "Thriller",
        "War",
        "Western",
    ]
)


def validate_synthetic_params(params: dict[str, Any]) -> dict[str, int]:
    """Check generator parameters and fill in defaults.

    Args:
        params: Any subset of ``n_users``, ``n_items``, ``n_interactions``, ``n_clusters``,
            ``seed`` and ``distinct_pairs`` (0/1 or a bool). Integral floats (``1e6``) are
            accepted.

    Returns:
        All six parameters as ints.

    Raises:
        InputError: For unknown keys, non-integers or out-of-range values.
    """
    example = '{"n_users": 1000, "n_items": 500, "n_interactions": 100000}'
    check_mapping(params, "synthetic parameters", list(DEFAULT_PARAMS), example)
    out: dict[str, int] = {}
    for key, default in DEFAULT_PARAMS.items():
        value = params.get(key, default)
        if key == "distinct_pairs" and isinstance(value, bool):
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InputError(f"synthetic parameter {key} must be an integer, got {value!r}.")
        out[key] = int(value)
    lows = {
        "n_users": 1,
        "n_items": 1,
        "n_interactions": 1,
        "n_clusters": 1,
        "seed": 0,
        "distinct_pairs": 0,
    }
    highs = {
        "n_users": MAX_ENTITIES,
        "n_items": MAX_ENTITIES,
        "n_interactions": MAX_INTERACTIONS,
        "n_clusters": 10_000,
        "seed": 2**63 - 1,
        "distinct_pairs": 1,
    }
    for key, value in out.items():
        if not lows[key] <= value <= highs[key]:
            raise InputError(
                f"synthetic parameter {key}={value} is out of range; use a value between "
                f"{lows[key]} and {highs[key]}."
            )
    if out["n_clusters"] > out["n_items"]:
        raise InputError(
            f"synthetic parameter n_clusters={out['n_clusters']} exceeds n_items="
            f"{out['n_items']}; every cluster needs at least one item, lower n_clusters."
        )
    capacity = out["n_users"] * _max_items_per_user(out["n_items"])
    if out["distinct_pairs"] and out["n_interactions"] > capacity:
        raise InputError(
            f"{out['n_interactions']} distinct (user, item) pairs do not fit in "
            f"{out['n_users']} users x {out['n_items']} items (a user holds at most "
            f"{MAX_USER_CATALOGUE_SHARE:.0%} of the catalogue: {capacity} pairs); give more "
            "users or items, or fewer interactions."
        )
    return out


def scaled_shape(
    n_interactions: int, n_users: int | None = None, n_items: int | None = None
) -> tuple[int, int]:
    """Users and items for ``n_interactions`` rows in MovieLens proportions, unless given.

    Users grow with the rows (MovieLens-25M: one user per 154 ratings), items more slowly
    (``ITEM_GROWTH_EXPONENT``): 25M rows give about 162k users x 59k items, 1M rows 6.5k x
    3.8k, 100k rows 650 x 650. Small row counts get at least ``MIN_SCALED_USERS`` users and
    enough items that every user could hold its rows twice over as distinct pairs.

    Args:
        n_interactions: Rows to generate (>= 1).
        n_users: Users, or None (or 0) to scale with the rows.
        n_items: Items, or None (or 0) to scale with the rows.

    Returns:
        ``(n_users, n_items)``.
    """
    rows = max(1, int(n_interactions))
    users = (
        int(n_users) if n_users else max(MIN_SCALED_USERS, round(rows * ML25M_USERS / ML25M_ROWS))
    )
    if n_items:
        return users, int(n_items)
    items = round(ML25M_ITEMS * (rows / ML25M_ROWS) ** ITEM_GROWTH_EXPONENT)
    # Room for every user's rows as distinct pairs, twice over (a user holds at most half).
    room = math.ceil(2 * rows / (users * MAX_USER_CATALOGUE_SHARE))
    return users, max(items, room, DEFAULT_PARAMS["n_clusters"])


def _max_items_per_user(n_items: int) -> int:
    """How many distinct items one user may hold with ``distinct_pairs``."""
    return max(1, int(n_items * MAX_USER_CATALOGUE_SHARE))


def _rng(seed: int, *key: int) -> np.random.Generator:
    """Return an independent generator for one part of the data (users, items, chunk i)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _draw(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling: indices into ``cdf`` for uniforms ``u`` in [0, 1)."""
    return np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1)


def _users_table(
    n_users: int, n_clusters: int, seed: int
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Draw users: clusters, activity CDF and features."""
    rng = _rng(seed, 0)
    cluster = rng.integers(0, n_clusters, n_users)
    age = AGE_BUCKETS[_draw(np.cumsum(AGE_PROBS), rng.random(n_users))]
    gender = GENDERS[_draw(np.cumsum(GENDER_PROBS), rng.random(n_users))]
    favourite = (cluster * 5) % len(OCCUPATIONS)
    occupation = np.where(
        rng.random(n_users) < 0.6, favourite, rng.integers(0, len(OCCUPATIONS), n_users)
    )
    activity_cdf = np.cumsum(rng.lognormal(0.0, 1.0, n_users))
    table = pa.table(
        {
            "user_id": pa.array(np.arange(1, n_users + 1, dtype=np.int64)),
            "user_age": pa.array(age, pa.int32()),
            "user_gender": pa.array(gender),
            "user_occupation": pa.array(OCCUPATIONS[occupation]),
            "user_cluster": pa.array(cluster.astype(np.int32)),
        }
    )
    return table, cluster, activity_cdf


def _items_table(
    n_items: int, n_clusters: int, seed: int
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Draw items: clusters, Zipf popularity and features."""
    rng = _rng(seed, 1)
    cluster = rng.permutation(np.arange(n_items) % n_clusters)
    popularity = (rng.permutation(n_items) + 1.0) ** -ZIPF_EXPONENT
    n_genres = len(GENRES)
    prob = np.full((n_items, n_genres), 0.05, dtype=np.float32)
    rows = np.arange(n_items)
    prob[rows, (cluster * 7 + 3) % n_genres] = 0.6
    prob[rows, cluster % n_genres] = 1.0
    mask = rng.random((n_items, n_genres), dtype=np.float32) < prob
    _, genre_idx = np.nonzero(mask)
    offsets = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int32)
    genres = pa.ListArray.from_arrays(pa.array(offsets), pa.array(GENRES[genre_idx]))
    year = np.clip(2022 - np.floor(rng.exponential(12.0, n_items)), 1950, 2022).astype(np.int32)
    ids = np.arange(1, n_items + 1, dtype=np.int64)
    title = pc.binary_join_element_wise(
        "Synthetic item ",
        pc.cast(pa.array(ids), pa.string()),
        " (",
        pc.cast(pa.array(year), pa.string()),
        ")",
        "",
    )
    table = pa.table(
        {
            "item_id": pa.array(ids),
            "title": title,
            "item_genres": genres,
            "item_year": pa.array(year),
            "item_cluster": pa.array(cluster.astype(np.int32)),
        }
    )
    return table, cluster, popularity


INTERACTIONS_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("weight", pa.float64()),
        ("ts", pa.timestamp("s")),
    ]
)


class _ItemSampler:
    """Draws items for rows of given users: in-cluster by popularity, or from the whole catalogue.

    Items are grouped by cluster; ``cdf_by_cluster`` runs from c to c + 1 over cluster c's
    items, so one searchsorted on (cluster + u) draws a popularity-weighted item of any row's
    cluster.
    """

    def __init__(self, item_cluster: np.ndarray, popularity: np.ndarray, n_clusters: int) -> None:
        self.order = np.argsort(item_cluster, kind="stable")
        sorted_cluster = item_cluster[self.order]
        clusters = np.arange(n_clusters)
        self.starts = np.searchsorted(sorted_cluster, clusters, side="left")
        self.ends = np.searchsorted(sorted_cluster, clusters, side="right")
        cum = np.cumsum(popularity[self.order])
        before = np.where(self.starts > 0, cum[np.maximum(self.starts - 1, 0)], 0.0)
        totals = cum[self.ends - 1] - before
        self.cdf_by_cluster = (
            sorted_cluster + (cum - before[sorted_cluster]) / totals[sorted_cluster]
        )
        self.cdf_all = np.cumsum(popularity)

    def draw(self, rng: np.random.Generator, cluster: np.ndarray, t_frac: np.ndarray) -> np.ndarray:
        """One item per row; the in-cluster share falls from 85% to 60% over time."""
        m = len(cluster)
        share = IN_CLUSTER_SHARE_START + (IN_CLUSTER_SHARE_END - IN_CLUSTER_SHARE_START) * t_frac
        in_cluster = rng.random(m) < share
        r = rng.random(m)
        pos = np.searchsorted(self.cdf_by_cluster, cluster + r, side="right")
        pos = np.clip(pos, self.starts[cluster], self.ends[cluster] - 1)
        return np.where(in_cluster, self.order[pos], _draw(self.cdf_all, r))


def _rows_batch(
    rng: np.random.Generator,
    user: np.ndarray,
    item: np.ndarray,
    t_frac: np.ndarray,
    user_cluster: np.ndarray,
    item_cluster: np.ndarray,
) -> pa.Table:
    """Ratings and timestamps for drawn (user, item) rows, as an interactions table."""
    liked = item_cluster[item] == user_cluster[user]
    rating = np.clip(np.rint(rng.normal(np.where(liked, 4.0, 2.7), 0.9)), 1.0, 5.0)
    start_s = int(START.timestamp())
    span_s = int(END.timestamp()) - start_s
    ts = start_s + (t_frac * span_s).astype(np.int64)
    return pa.table(
        [
            pa.array(user + 1, pa.int64()),
            pa.array(item + 1, pa.int64()),
            pa.array(rating),
            pa.array(ts, pa.timestamp("s")),
        ],
        schema=INTERACTIONS_SCHEMA,
    )


def _user_row_counts(activity: np.ndarray, n_interactions: int, cap: int) -> np.ndarray:
    """Rows per user in proportion to ``activity``, summing to ``n_interactions``, each <= cap.

    Largest-remainder rounding; users over the cap are cut to it and their excess is shared
    among the others in proportion to activity, until none is over (the caller checked that
    ``n_users * cap >= n_interactions``).
    """
    counts = np.zeros(len(activity), dtype=np.int64)
    open_users = np.ones(len(activity), dtype=bool)
    left = int(n_interactions)
    while left > 0:
        weights = np.where(open_users, activity, 0.0)
        expected = left * weights / weights.sum()
        share = np.floor(expected).astype(np.int64)
        remainder = left - int(share.sum())
        # the largest fractional parts get one more row; ties go to the smaller user index
        order = np.lexsort((np.arange(len(activity)), -(expected - share)))
        share[order[:remainder]] += 1
        counts += share
        over = counts > cap
        left = int((counts[over] - cap).sum())
        counts[over] = cap
        open_users &= counts < cap
    return counts


def _distinct_items(
    rng: np.random.Generator,
    sampler: _ItemSampler,
    user: np.ndarray,
    cluster: np.ndarray,
    t_frac: np.ndarray,
    n_items: int,
) -> np.ndarray:
    """Items for rows of users (sorted by user) such that no user gets the same item twice.

    A repeated (user, item) draw keeps its first row; the others are redrawn by popularity for
    ``POPULAR_REDRAW_ROUNDS`` rounds, then uniformly over the catalogue until none repeats (a
    user holds at most half the catalogue, so each uniform round at least halves them).
    """
    item = sampler.draw(rng, cluster, t_frac)
    key = user * n_items + item
    order = np.argsort(key, kind="stable")
    repeated = np.zeros(len(key), dtype=bool)
    repeated[order[1:]] = key[order[1:]] == key[order[:-1]]
    taken = np.unique(key[~repeated])  # sorted keys of the rows kept so far
    todo = np.flatnonzero(repeated)
    rounds = 0
    while todo.size:
        if rounds < POPULAR_REDRAW_ROUNDS:
            candidate = sampler.draw(rng, cluster[todo], t_frac[todo])
        else:
            candidate = rng.integers(0, n_items, todo.size)
        rounds += 1
        candidate_key = user[todo] * n_items + candidate
        pos = np.minimum(np.searchsorted(taken, candidate_key), len(taken) - 1)
        free = taken[pos] != candidate_key
        _, first = np.unique(candidate_key, return_index=True)
        is_first = np.zeros(todo.size, dtype=bool)
        is_first[first] = True
        accepted = free & is_first
        item[todo[accepted]] = candidate[accepted]
        new_keys = np.sort(candidate_key[accepted])
        taken = np.insert(taken, np.searchsorted(taken, new_keys), new_keys)
        todo = todo[~accepted]
    return item


def generate_synthetic(
    out_dir: Path,
    *,
    n_users: int = DEFAULT_PARAMS["n_users"],
    n_items: int = DEFAULT_PARAMS["n_items"],
    n_interactions: int = DEFAULT_PARAMS["n_interactions"],
    n_clusters: int = DEFAULT_PARAMS["n_clusters"],
    seed: int = DEFAULT_PARAMS["seed"],
    distinct_pairs: bool | int = False,
    chunk_rows: int = CHUNK_ROWS,
) -> dict[str, Any]:
    """Generate a synthetic dataset into ``out_dir``.

    Writes ``interactions.parquet`` (user_id, item_id, weight 1-5, ts), ``users.parquet``
    (user_id, user_age, user_gender, user_occupation, user_cluster), ``items.parquet``
    (item_id, title, item_genres, item_year, item_cluster) and, last, ``manifest.json``.
    The ``*_cluster`` columns are the planted truth; the loader does not use them as features.

    Args:
        out_dir: Output directory (created if needed).
        n_users: Number of users.
        n_items: Number of items (at least ``n_clusters``).
        n_interactions: Number of interaction rows.
        n_clusters: Number of latent taste clusters.
        seed: Random seed; the same parameters give identical output.
        distinct_pairs: Never the same (user, item) pair twice (rows grouped by user in the
            file); False draws every row independently (the original generator).
        chunk_rows: Rows generated and written at a time (memory bound, not part of the
            output's identity as long as it is unchanged).

    Returns:
        The manifest: parameters, generator version and row counts.

    Raises:
        InputError: If the parameters are invalid.
    """
    params = validate_synthetic_params(
        {
            "n_users": n_users,
            "n_items": n_items,
            "n_interactions": n_interactions,
            "n_clusters": n_clusters,
            "seed": seed,
            "distinct_pairs": distinct_pairs,
        }
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    users, user_cluster, user_cdf = _users_table(n_users, n_clusters, seed)
    items, item_cluster, popularity = _items_table(n_items, n_clusters, seed)
    pq.write_table(users, out_dir / "users.parquet")
    pq.write_table(items, out_dir / "items.parquet")
    sampler = _ItemSampler(item_cluster, popularity, n_clusters)
    if params["distinct_pairs"]:
        chunks = _distinct_pair_chunks(
            sampler, user_cluster, user_cdf, n_items, n_interactions, seed, chunk_rows
        )
    else:
        chunks = _independent_chunks(
            sampler, user_cluster, user_cdf, n_interactions, seed, chunk_rows
        )
    written = 0
    with pq.ParquetWriter(out_dir / "interactions.parquet", INTERACTIONS_SCHEMA) as writer:
        for rng, user, item, t_frac in chunks:
            writer.write_table(_rows_batch(rng, user, item, t_frac, user_cluster, item_cluster))
            written += len(user)
            _log_progress(written, n_interactions, started)
    manifest = {"generator_version": GENERATOR_VERSION, **params, "rows_written": written}
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info(
        "synthetic dataset written to %s in %.1f s: %s",
        out_dir,
        time.perf_counter() - started,
        manifest,
    )
    return manifest


Chunk = tuple[np.random.Generator, np.ndarray, np.ndarray, np.ndarray]


def _independent_chunks(
    sampler: _ItemSampler,
    user_cluster: np.ndarray,
    user_cdf: np.ndarray,
    n_interactions: int,
    seed: int,
    chunk_rows: int,
) -> Iterator[Chunk]:
    """Rows drawn independently, ``chunk_rows`` at a time: ``(rng, user, item, t_frac)``.

    A user is drawn by activity, then an item of their cluster (or any) by popularity, so a
    (user, item) pair can repeat. ``rng`` goes on to draw the chunk's ratings.
    """
    for chunk, lo in enumerate(range(0, n_interactions, chunk_rows)):
        m = min(chunk_rows, n_interactions - lo)
        rng = _rng(seed, 2, chunk)
        user = _draw(user_cdf, rng.random(m))
        t_frac = rng.random(m) ** 0.75  # density grows over time
        yield rng, user, sampler.draw(rng, user_cluster[user], t_frac), t_frac


def _distinct_pair_chunks(
    sampler: _ItemSampler,
    user_cluster: np.ndarray,
    user_cdf: np.ndarray,
    n_items: int,
    n_interactions: int,
    seed: int,
    chunk_rows: int,
) -> Iterator[Chunk]:
    """Rows of whole users, never the same pair twice: ``(rng, user, item, t_frac)`` per chunk.

    Each user gets rows in proportion to their activity (see :func:`_user_row_counts`); a chunk
    holds whole users, up to the one whose rows cross the next multiple of ``chunk_rows``.
    """
    activity = np.diff(user_cdf, prepend=0.0)
    counts = _user_row_counts(activity, n_interactions, _max_items_per_user(n_items))
    ends = np.cumsum(counts)
    bounds = np.searchsorted(ends, np.arange(chunk_rows, ends[-1], chunk_rows), "left")
    bounds = np.unique(np.concatenate([[0], bounds + 1, [len(counts)]]))
    for chunk, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        rng = _rng(seed, 2, chunk)
        user = np.repeat(np.arange(lo, hi), counts[lo:hi])
        t_frac = rng.random(len(user)) ** 0.75  # density grows over time
        cluster = user_cluster[user]
        yield rng, user, _distinct_items(rng, sampler, user, cluster, t_frac, n_items), t_frac


def _log_progress(written: int, total: int, started: float) -> None:
    """One progress line per chunk: rows so far and the rate."""
    seconds = time.perf_counter() - started
    logger.info(
        "synthetic: %d / %d rows (%.0f%%), %.1f M rows/s",
        written,
        total,
        100 * written / total,
        written / max(seconds, 1e-9) / 1e6,
    )
