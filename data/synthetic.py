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

Everything is vectorised NumPy. Interactions are produced and written in chunks of ``chunk_rows``
rows (one parquet row group each), so memory stays flat (well under 1 GB for 1M-row chunks)
whatever ``n_interactions`` is. The same parameters always give identical files.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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
}
MAX_ENTITIES = 10_000_000
MAX_INTERACTIONS = 5_000_000_000
CHUNK_ROWS = 1_000_000

ZIPF_EXPONENT = 1.0
START = datetime(2020, 1, 1, tzinfo=UTC)
END = datetime(2023, 1, 1, tzinfo=UTC)
IN_CLUSTER_SHARE_START = 0.85
IN_CLUSTER_SHARE_END = 0.60

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
            ``seed``. Integral floats (``1e6``) are accepted.

    Returns:
        All five parameters as ints.

    Raises:
        InputError: For unknown keys, non-integers or out-of-range values.
    """
    if not isinstance(params, dict):
        raise InputError(
            f"synthetic parameters must be a mapping, got {type(params).__name__}; pass e.g. "
            '{"n_users": 1000, "n_items": 500, "n_interactions": 100000}.'
        )
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise InputError(
            f"unknown synthetic parameter(s) {unknown}; the allowed ones are "
            f"{', '.join(DEFAULT_PARAMS)}."
        )
    out: dict[str, int] = {}
    for key, default in DEFAULT_PARAMS.items():
        value = params.get(key, default)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InputError(f"synthetic parameter {key} must be an integer, got {value!r}.")
        out[key] = int(value)
    lows = {"n_users": 1, "n_items": 1, "n_interactions": 1, "n_clusters": 1, "seed": 0}
    highs = {
        "n_users": MAX_ENTITIES,
        "n_items": MAX_ENTITIES,
        "n_interactions": MAX_INTERACTIONS,
        "n_clusters": 10_000,
        "seed": 2**63 - 1,
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
    return out


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


def generate_synthetic(
    out_dir: Path,
    *,
    n_users: int = DEFAULT_PARAMS["n_users"],
    n_items: int = DEFAULT_PARAMS["n_items"],
    n_interactions: int = DEFAULT_PARAMS["n_interactions"],
    n_clusters: int = DEFAULT_PARAMS["n_clusters"],
    seed: int = DEFAULT_PARAMS["seed"],
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
        }
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    users, user_cluster, user_cdf = _users_table(n_users, n_clusters, seed)
    items, item_cluster, popularity = _items_table(n_items, n_clusters, seed)
    pq.write_table(users, out_dir / "users.parquet")
    pq.write_table(items, out_dir / "items.parquet")

    # Items grouped by cluster; cdf_by_cluster runs from c to c + 1 over cluster c's items, so
    # one searchsorted on (cluster + u) draws a popularity-weighted item of any row's cluster.
    order = np.argsort(item_cluster, kind="stable")
    sorted_cluster = item_cluster[order]
    clusters = np.arange(n_clusters)
    starts = np.searchsorted(sorted_cluster, clusters, side="left")
    ends = np.searchsorted(sorted_cluster, clusters, side="right")
    cum = np.cumsum(popularity[order])
    before = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
    totals = cum[ends - 1] - before
    cdf_by_cluster = sorted_cluster + (cum - before[sorted_cluster]) / totals[sorted_cluster]
    cdf_all = np.cumsum(popularity)

    start_s = int(START.timestamp())
    span_s = int(END.timestamp()) - start_s
    written = 0
    with pq.ParquetWriter(out_dir / "interactions.parquet", INTERACTIONS_SCHEMA) as writer:
        for chunk, lo in enumerate(range(0, n_interactions, chunk_rows)):
            m = min(chunk_rows, n_interactions - lo)
            rng = _rng(seed, 2, chunk)
            user = _draw(user_cdf, rng.random(m))
            t_frac = rng.random(m) ** 0.75  # density grows over time
            share = (
                IN_CLUSTER_SHARE_START + (IN_CLUSTER_SHARE_END - IN_CLUSTER_SHARE_START) * t_frac
            )
            in_cluster = rng.random(m) < share
            cluster = user_cluster[user]
            r = rng.random(m)
            pos = np.searchsorted(cdf_by_cluster, cluster + r, side="right")
            pos = np.clip(pos, starts[cluster], ends[cluster] - 1)
            item = np.where(in_cluster, order[pos], _draw(cdf_all, r))
            liked = item_cluster[item] == cluster
            rating = np.clip(np.rint(rng.normal(np.where(liked, 4.0, 2.7), 0.9)), 1.0, 5.0)
            ts = start_s + (t_frac * span_s).astype(np.int64)
            batch = pa.table(
                [
                    pa.array(user + 1, pa.int64()),
                    pa.array(item + 1, pa.int64()),
                    pa.array(rating),
                    pa.array(ts, pa.timestamp("s")),
                ],
                schema=INTERACTIONS_SCHEMA,
            )
            writer.write_table(batch)
            written += m
    manifest = {"generator_version": GENERATOR_VERSION, **params, "rows_written": written}
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("synthetic dataset written to %s: %s", out_dir, manifest)
    return manifest
