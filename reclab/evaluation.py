"""Offline ranking evaluation: one protocol for every model family, so their numbers compare.

Every model family is judged by the same function, in the same encoded id space, with the same
denominators; a number from this module means exactly what is written here.

Protocol
--------
Ids. Users ``0..n_users-1`` and items ``0..n_items-1`` are the train catalogue. The window
(validation or test interactions) is given as two int64 arrays ``window_user_idx`` and
``window_item_idx``:

* A user absent from train is *cold*: a negative ``window_user_idx`` (the convention is ``-1``).
  Cold users are counted, never evaluated. ``cold_users`` counts distinct negative codes, so it is
  exact only when the caller gives each cold user its own negative code (``-1 - j``); with every
  cold user coded ``-1`` it is at most 1, and ``cold_interactions`` is the exact number to read.
* Each raw item never seen in train has its OWN code ``>= n_items`` (the caller guarantees that
  distinct raw items get distinct codes), so several unseen items never collapse into one code
  and ``|relevant|`` is not shrunk. No model can recommend them, so they are pure misses.

Users. The *warm window users* are users with ``idx >= 0`` and at least one window interaction.
For each, relevant = the user's DISTINCT window items minus the items already among their train
items. Warm users left with no relevant item are *skipped*: counted, not in any mean. The
remaining users are the *evaluated users*.

Ranking. For each evaluated user the model ranks the full train catalogue excluding the user's
train items; the evaluator asks for ``max(ks)`` items once and cuts the list at each ``k``.
Item id ``-1`` is padding ("no item", a miss). A recommended item that is among the user's train
items, an id outside ``[-1, n_items)``, or the same item twice in one list, is a broken model
contract and raises ``ValueError``.

Metrics at each ``k``, per evaluated user, with ``hits`` the number of relevant items in the top
``k`` and ``rank`` counted from 1; the reported value is the plain mean over evaluated users:

* ``recall    = hits / |relevant|``
* ``precision = hits / k`` (padding counts as a miss, not as a shorter list)
* ``ndcg      = DCG / IDCG``, binary gain, ``DCG = sum over hit ranks of 1 / log2(rank + 1)``,
  ``IDCG = sum_{r=1}^{min(k, |relevant|)} 1 / log2(r + 1)``
* ``map       = (sum over hit ranks r of precision@r) / min(k, |relevant|)``
* ``hit_rate  = 1 if hits > 0 else 0``
* ``coverage  = |distinct items in the top-k lists of all evaluated users| / n_items``
  (catalogue coverage, one number, not a per-user mean)

Counts: ``window_users`` (distinct window users, cold included: warm distinct users plus
``cold_users``), ``cold_users``, ``cold_interactions``, ``evaluated_users``, ``skipped_users``,
``relevant_pairs`` (distinct relevant (user, item) pairs over evaluated users) and
``unseen_item_share`` (share of those pairs whose item is a code ``>= n_items``).

Intervals: a 95% percentile bootstrap over evaluated users (resample users with replacement,
``bootstrap_samples`` times, seeded) of the mean ``ndcg`` and ``recall`` at each ``k`` of
``interval_ks`` (every ``k`` unless given). The resampled users do not depend on the cut-offs,
so the interval at one ``k`` is the same whether or not other cut-offs are evaluated with it.

Scale. Users are processed in batches of ``batch_size``; train and relevant sets are CSR
matrices and hits are found by sorted search of ``row * n_cols + item`` keys, so no dense
``n_users x n_items`` matrix is ever built. Only the hit matrix (evaluated users x ``max(ks)``
booleans) is kept across batches; every metric at every cut-off comes from its running sums
over ranks, so evaluating ``ks = 1..50`` in one call costs about what ``ks = (50,)`` costs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reclab.errors import InputError

logger = logging.getLogger(__name__)

RecommendFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
"""``recommend(user_idx (n,), k) -> (item_idx (n, k) int, scores (n, k) float)``, seen excluded."""

METRIC_NAMES = ("recall", "precision", "ndcg", "map", "hit_rate", "coverage")
INTERVAL_METRICS = ("ndcg", "recall")
PAD_ITEM = -1

# Bootstrap index draws are done in chunks of about this many entries to bound memory.
_BOOTSTRAP_CHUNK_ENTRIES = 4_000_000

__all__ = [
    "INTERVAL_METRICS",
    "METRIC_NAMES",
    "PAD_ITEM",
    "EvaluationResult",
    "RecommendFn",
    "evaluate",
    "metric_key",
    "ranking_metrics",
]


def metric_key(metric: str, k: int) -> str:
    """Name of a metric at a cut-off, as used in ``EvaluationResult.metrics``.

    Args:
        metric: One of ``METRIC_NAMES``.
        k: The cut-off.

    Returns:
        ``"<metric>_at_<k>"``, e.g. ``"ndcg_at_10"``.
    """
    return f"{metric}_at_{k}"


@dataclass
class EvaluationResult:
    """What ``evaluate`` measured; see the module docstring for the protocol.

    Attributes:
        metrics: ``"<metric>_at_<k>"`` -> mean over evaluated users (coverage: catalogue share)
            for every metric in ``METRIC_NAMES`` and every ``k``. NaN when no user was evaluated.
        intervals: ``"ndcg_at_<k>"`` and ``"recall_at_<k>"`` -> 95% bootstrap (low, high).
        counts: ``window_users``, ``cold_users``, ``cold_interactions``, ``evaluated_users``,
            ``skipped_users``, ``relevant_pairs``, ``unseen_item_share``.
        per_user: One row per evaluated user: ``user_idx``, ``n_relevant`` and
            ``ndcg_at_<k>``, ``recall_at_<k>`` for each ``k`` of ``interval_ks``.
    """

    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    counts: dict[str, int | float]
    per_user: pd.DataFrame = field(repr=False)

    def at_cutoffs(self, ks: Sequence[int]) -> EvaluationResult:
        """The same evaluation restricted to some cut-offs (e.g. the leaderboard's ``k``).

        Args:
            ks: Cut-offs to keep; each must have been evaluated.

        Returns:
            A new result whose metrics, intervals and per-user columns are those at ``ks``;
            the counts are shared.

        Raises:
            KeyError: If a cut-off was not evaluated.
        """
        keep = {int(k) for k in ks}
        for k in keep:
            if metric_key(METRIC_NAMES[0], k) not in self.metrics:
                raise KeyError(f"cut-off {k} was not evaluated")
        suffixes = tuple(f"_at_{k}" for k in keep)
        columns = [
            c
            for c in self.per_user.columns
            if c in ("user_idx", "n_relevant") or c.endswith(suffixes)
        ]
        return EvaluationResult(
            metrics={key: v for key, v in self.metrics.items() if key.endswith(suffixes)},
            intervals={key: v for key, v in self.intervals.items() if key.endswith(suffixes)},
            counts=self.counts,
            per_user=self.per_user[columns].copy(),
        )

    def as_row(self, prefix: str) -> dict[str, float]:
        """Flatten metrics and intervals into one row, e.g. for a comparison table.

        Args:
            prefix: Put before every key, e.g. ``"val"`` gives ``"val_ndcg_at_10"``.

        Returns:
            ``{f"{prefix}_{key}": value}`` for every metric, plus
            ``f"{prefix}_{key}_low"`` and ``f"{prefix}_{key}_high"`` for every interval.
        """
        row = {f"{prefix}_{key}": float(value) for key, value in self.metrics.items()}
        for key, (low, high) in self.intervals.items():
            row[f"{prefix}_{key}_low"] = float(low)
            row[f"{prefix}_{key}_high"] = float(high)
        return row


# --------------------------------------------------------------------------------------------
# Pure metric functions
# --------------------------------------------------------------------------------------------


def _canonical_csr(matrix: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """CSR with sorted, de-duplicated indices (the layout ``_in_rows`` searches)."""
    csr = sp.csr_matrix(matrix)
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    return csr


def _in_rows(rows: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
    """Vectorised membership: is ``cols[i, j]`` a stored column of row ``i`` of ``rows``?

    Args:
        rows: Sparse matrix with shape ``(n, m)``; its stored entries are the members.
        cols: Int array ``(n, K)``; entries outside ``[0, m)`` (padding) are never members.

    Returns:
        Boolean array ``(n, K)``.
    """
    rows = _canonical_csr(rows)
    n, m = rows.shape
    found = np.zeros(cols.shape, dtype=bool)
    if rows.nnz == 0 or cols.size == 0:
        return found
    # Row-major keys are sorted because rows are in order and indices sorted within each row.
    nnz_row = np.repeat(np.arange(n, dtype=np.int64), np.diff(rows.indptr))
    keys = nnz_row * m + rows.indices.astype(np.int64)
    valid = (cols >= 0) & (cols < m)
    query = np.arange(n, dtype=np.int64)[:, None] * m + np.where(valid, cols, 0).astype(np.int64)
    pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    found[...] = valid & (keys[pos] == query)
    return found


def _duplicate_rows(recommended: np.ndarray) -> np.ndarray:
    """Rows of a recommendation matrix that list one real item twice."""
    if recommended.shape[1] < 2:
        return np.zeros(recommended.shape[0], dtype=bool)
    ordered = np.sort(recommended, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] != PAD_ITEM)
    return repeated.any(axis=1)


def _metrics_from_hits(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-user metrics at ``k`` from a hit matrix; see the module docstring for formulas.

    Args:
        hits: Boolean ``(n, >= k)``; ``hits[i, j]`` says whether rank ``j + 1`` is relevant.
        n_relevant: ``(n,)`` size of each user's relevant set.
        k: Cut-off.

    Returns:
        ``recall``, ``precision``, ``ndcg``, ``map``, ``hit_rate`` as float ``(n,)`` arrays;
        users with no relevant item get NaN for recall, ndcg and map.
    """
    return _metrics_at_cutoffs(hits, n_relevant, (k,))[k]


def _metrics_at_cutoffs(
    hits: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int]
) -> dict[int, dict[str, np.ndarray]]:
    """Per-user metrics at every ``k`` of ``ks`` from one hit matrix, by running sums over ranks.

    ``n_hits``, the DCG and the sum of precision at hit ranks are cumulative sums along the
    ranks, so each cut-off is one column of them; see the module docstring for the formulas.

    Args:
        hits: Boolean ``(n, >= max(ks))``; ``hits[i, j]`` says whether rank ``j + 1`` is
            relevant.
        n_relevant: ``(n,)`` size of each user's relevant set.
        ks: Cut-offs.

    Returns:
        ``{k: {"recall", "precision", "ndcg", "map", "hit_rate": float (n,) array}}``; users
        with no relevant item get NaN for recall, ndcg and map.
    """
    k_max = max(ks)
    top = hits[:, :k_max].astype(np.float64)
    ranks = np.arange(1, k_max + 1, dtype=np.float64)
    discounts = 1.0 / np.log2(ranks + 1.0)
    # ideal_dcg[c] is the DCG of c hits at the top ranks; index 0 stays 0 (no relevant items).
    ideal_dcg = np.concatenate([[0.0], np.cumsum(discounts)])
    n_hits = np.cumsum(top, axis=1)
    dcg = np.cumsum(top * discounts, axis=1)
    precision_sum = np.cumsum(top * (n_hits / ranks), axis=1)  # precision@r at hit ranks r
    n_relevant = n_relevant.astype(np.float64)
    out = {}
    for k in ks:
        hits_at_k = n_hits[:, k - 1]
        ideal_count = np.minimum(n_relevant, k).astype(np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[k] = {
                "recall": hits_at_k / n_relevant,
                "precision": hits_at_k / k,
                "ndcg": dcg[:, k - 1] / ideal_dcg[ideal_count],
                "map": precision_sum[:, k - 1] / ideal_count,
                "hit_rate": (hits_at_k > 0).astype(np.float64),
            }
    return out


def ranking_metrics(
    recommended: np.ndarray, relevant: sp.spmatrix | sp.sparray, k: int
) -> dict[str, np.ndarray]:
    """Per-user ranking metrics at ``k`` for one matrix of recommendations.

    Denominators: recall divides by ``|relevant|``; precision by ``k`` (padding is a miss);
    NDCG by the ideal DCG over ``min(k, |relevant|)`` ranks; MAP (average precision) by
    ``min(k, |relevant|)``. Worked example, ``k = 3``: truth ``{a, b}``, list ``[a, x, b]``
    gives precision 2/3, recall 1, AP ``(1 + 2/3) / 2 = 0.8333`` and NDCG
    ``(1 + 1/log2(4)) / (1 + 1/log2(3)) = 0.9197``.

    Args:
        recommended: Int array ``(n, K)`` of item codes in rank order; ``-1`` is padding.
            Only the first ``k`` columns are used; if ``K < k`` the list is padded.
        relevant: Sparse ``(n, n_codes)``; the stored entries of row ``i`` are user ``i``'s
            relevant item codes (values are ignored).
        k: Cut-off, ``>= 1``.

    Returns:
        ``recall``, ``precision``, ``ndcg``, ``map``, ``hit_rate`` and ``n_relevant``, each a
        float ``(n,)`` array (``n_relevant`` is int). Rows with no relevant item get NaN for
        recall, ndcg and map, 0 for precision and hit_rate.

    Raises:
        InputError: If ``k < 1``, the shapes disagree, an item code is outside
            ``[-1, n_codes)`` or a row repeats an item.
    """
    k = _check_k(k)
    recommended = np.asarray(recommended)
    if recommended.ndim != 2 or not np.issubdtype(recommended.dtype, np.integer):
        raise InputError(
            f"recommended must be a 2-D integer array, got shape {recommended.shape} "
            f"and dtype {recommended.dtype}."
        )
    rel = _canonical_csr(relevant)
    if rel.shape[0] != recommended.shape[0]:
        raise InputError(
            f"recommended has {recommended.shape[0]} rows but relevant has {rel.shape[0]}; "
            "they must describe the same users in the same order."
        )
    if recommended.size and (recommended.min() < PAD_ITEM or recommended.max() >= rel.shape[1]):
        raise InputError(
            f"recommended item codes must be in [-1, {rel.shape[1]}), got "
            f"[{recommended.min()}, {recommended.max()}]."
        )
    if _duplicate_rows(recommended).any():
        raise InputError(
            f"rows {np.flatnonzero(_duplicate_rows(recommended))[:5].tolist()} of recommended "
            "list an item more than once."
        )
    recommended = _pad_columns(recommended, k)[:, :k]
    n_relevant = np.diff(rel.indptr)
    metrics = _metrics_from_hits(_in_rows(rel, recommended), n_relevant, k)
    metrics["n_relevant"] = n_relevant.astype(np.int64)
    return metrics


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise InputError(f"k must be an integer >= 1, got {k!r}.")
    return int(k)


def _as_index_array(name: str, values: object) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {array.shape}.")
    if array.size == 0:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{name} must hold integer encoded ids, got dtype {array.dtype}.")
    return array.astype(np.int64, copy=False)


def _check_range(name: str, array: np.ndarray, low: int, high: int | None) -> None:
    if array.size == 0:
        return
    lo, hi = int(array.min()), int(array.max())
    if lo < low or (high is not None and hi >= high):
        bound = f"[{low}, {high})" if high is not None else f">= {low}"
        raise InputError(f"{name} must be {bound}, got values in [{lo}, {hi}].")


def _pad_columns(items: np.ndarray, k: int) -> np.ndarray:
    """Right-pad a recommendation matrix with ``-1`` to ``k`` columns."""
    if items.shape[1] >= k:
        return items
    pad = np.full((items.shape[0], k - items.shape[1]), PAD_ITEM, dtype=items.dtype)
    return np.concatenate([items, pad], axis=1)


def _binary_csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Canonical 0/1 CSR of the distinct (row, col) pairs."""
    data = np.ones(rows.size, dtype=np.int8)
    csr = sp.csr_matrix((data, (rows, cols)), shape=shape)
    csr.sum_duplicates()
    csr.data[:] = 1
    return csr


def _checked_recommendations(
    recommend: RecommendFn,
    users: np.ndarray,
    k: int,
    n_items: int,
    train_rows: sp.csr_matrix,
) -> np.ndarray:
    """Call the model for one batch and enforce its contract.

    Raises:
        ValueError: If the model returns the wrong shape, ids outside ``[-1, n_items)``, the same
            item twice for one user, or an item among the user's train items.
    """
    items, scores = recommend(users, k)
    items = np.asarray(items)
    scores = np.asarray(scores)
    if items.ndim != 2 or items.shape[0] != users.size or items.shape[1] > k:
        raise ValueError(
            f"recommend({users.size} users, k={k}) returned item ids of shape {items.shape}; "
            f"expected ({users.size}, {k}) (fewer columns are allowed and read as padding)."
        )
    if scores.shape != items.shape:
        raise ValueError(
            f"recommend returned scores of shape {scores.shape} for items of shape {items.shape}."
        )
    if items.size and not np.issubdtype(items.dtype, np.integer):
        raise ValueError(f"recommend returned item ids of dtype {items.dtype}; expected integers.")
    items = _pad_columns(items.astype(np.int64, copy=False), k)
    bad = (items < PAD_ITEM) | (items >= n_items)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"recommend returned item {items[row, col]} for user {users[row]}; item ids must be "
            f"in [-1, {n_items}) (-1 means no item)."
        )
    duplicated = _duplicate_rows(items)
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise ValueError(f"recommend listed an item more than once for user {users[row]}.")
    seen = _in_rows(train_rows, items)
    if seen.any():
        row, col = np.argwhere(seen)[0]
        raise ValueError(
            f"recommend returned item {items[row, col]} for user {users[row]}, who already has it "
            "in train; the model must exclude seen items."
        )
    return items


def _bootstrap_intervals(
    values: np.ndarray, samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile bootstrap interval of the column means of ``values`` (users x metrics).

    Returns:
        ``(low, high)``, each of shape ``(n_metrics,)``; NaN if there are no users or samples.
    """
    n_users, n_metrics = values.shape
    if n_users == 0 or samples == 0:
        nan = np.full(n_metrics, np.nan)
        return nan, nan.copy()
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CHUNK_ENTRIES // n_users)
    means = np.empty((samples, n_metrics))
    for start in range(0, samples, chunk):
        size = min(chunk, samples - start)
        draws = rng.integers(0, n_users, size=(size, n_users))
        # Resample counts per user, then one matrix product gives every metric's mean at once.
        offsets = np.arange(size, dtype=np.int64)[:, None] * n_users
        counts = np.bincount((draws + offsets).ravel(), minlength=size * n_users)
        means[start : start + size] = counts.reshape(size, n_users) @ values / n_users
    low, high = np.percentile(means, [2.5, 97.5], axis=0)
    return low, high


def evaluate(
    recommend: RecommendFn,
    train_user_idx: np.ndarray,
    train_item_idx: np.ndarray,
    window_user_idx: np.ndarray,
    window_item_idx: np.ndarray,
    n_users: int,
    n_items: int,
    ks: Sequence[int] = (10,),
    batch_size: int = 4096,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    interval_ks: Sequence[int] | None = None,
) -> EvaluationResult:
    """Evaluate a model on a validation or test window with the module's protocol.

    Args:
        recommend: ``recommend(user_idx (n,), k) -> (item_idx (n, k), scores (n, k))`` with the
            user's train items already excluded; ``-1`` pads lists shorter than ``k``.
        train_user_idx: Encoded users of the train interactions, in ``[0, n_users)``.
        train_item_idx: Encoded items of the train interactions, in ``[0, n_items)``.
        window_user_idx: Encoded users of the window; negative (``-1``) for cold users.
        window_item_idx: Encoded items of the window, ``>= 0``; codes ``>= n_items`` are items
            unseen in train, one distinct code per distinct raw item.
        n_users: Number of encoded users.
        n_items: Number of encoded train items (the catalogue), ``> 0``.
        ks: Cut-offs; the model is asked once for ``max(ks)`` items.
        batch_size: Users per ``recommend`` call.
        bootstrap_samples: Bootstrap resamples for the intervals; 0 gives NaN intervals.
        seed: Seed of the bootstrap.
        interval_ks: Cut-offs that get bootstrap intervals and per-user columns; None means
            every ``k`` of ``ks``. E.g. ``ks=range(1, 51), interval_ks=(10,)`` gives the metric
            curves and the leaderboard's intervals in one pass over the users.

    Returns:
        The metrics, intervals, counts and per-user table. If no user can be evaluated, the
        metrics and intervals are NaN, the counts are filled and a warning is logged.

    Raises:
        InputError: If an argument is malformed: ``k < 1``, arrays of unequal length, ids out of
            range, ``n_items <= 0``, ``batch_size < 1``, ``bootstrap_samples < 0`` or an
            interval cut-off that is not in ``ks``.
        ValueError: If the model breaks its contract: wrong output shape, an item id outside
            ``[-1, n_items)``, an item listed twice, or one of the user's train items.
    """
    ks, interval_ks = _checked_cutoffs(ks, interval_ks)
    for name, value, low in (
        ("n_users", n_users, 0),
        ("n_items", n_items, 1),
        ("batch_size", batch_size, 1),
        ("bootstrap_samples", bootstrap_samples, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}.")
    sets = _window_sets(
        (train_user_idx, train_item_idx), (window_user_idx, window_item_idx), n_users, n_items
    )
    counts = sets.counts
    logger.info(
        "Evaluating %d users (%d skipped with nothing new, %d cold) at k=%s; "
        "%.1f%% of relevant pairs are items unseen in train.",
        counts["evaluated_users"],
        counts["skipped_users"],
        counts["cold_users"],
        ks,
        100 * counts["unseen_item_share"] if counts["relevant_pairs"] else 0.0,
    )
    hits, first_rank = _hits_and_first_ranks(recommend, sets, ks[-1], batch_size)
    per_k = _metrics_at_cutoffs(hits, sets.n_relevant, ks)
    metrics = _mean_metrics(per_k, first_rank, ks, sets)
    per_user, intervals = _per_user_intervals(per_k, sets, interval_ks, bootstrap_samples, seed)
    if not sets.users.size:
        logger.warning(
            "No user could be evaluated: %d window users, %d cold, %d skipped because all their "
            "window items are already in train. Metrics are NaN.",
            counts["window_users"],
            counts["cold_users"],
            counts["skipped_users"],
        )
    return EvaluationResult(metrics=metrics, intervals=intervals, counts=counts, per_user=per_user)


def _mean_metrics(
    per_k: dict[int, dict[str, np.ndarray]],
    first_rank: np.ndarray,
    ks: list[int],
    sets: _WindowSets,
) -> dict[str, float]:
    """Every metric at every ``k``: per-user means, and coverage from the first ranks."""
    evaluated = sets.users.size
    metrics: dict[str, float] = {}
    for k in ks:
        for name in METRIC_NAMES:
            if name == "coverage":
                value = (first_rank < k).sum() / sets.n_items if evaluated else np.nan
            else:
                value = per_k[k][name].mean() if evaluated else np.nan
            metrics[metric_key(name, k)] = float(value)
    return metrics


def _per_user_intervals(
    per_k: dict[int, dict[str, np.ndarray]],
    sets: _WindowSets,
    interval_ks: list[int],
    bootstrap_samples: int,
    seed: int,
) -> tuple[pd.DataFrame, dict[str, tuple[float, float]]]:
    """The per-user table and the bootstrap intervals at the ``interval_ks``."""
    evaluated = sets.users.size
    columns = {"user_idx": sets.users, "n_relevant": sets.n_relevant.astype(np.int64)}
    for k in interval_ks:
        for name in INTERVAL_METRICS:
            columns[metric_key(name, k)] = per_k[k][name] if evaluated else np.empty(0)
    per_user = pd.DataFrame(columns)
    keys = [metric_key(name, k) for k in interval_ks for name in INTERVAL_METRICS]
    low, high = _bootstrap_intervals(
        per_user[keys].to_numpy(dtype=np.float64), bootstrap_samples, seed
    )
    intervals = {key: (float(lo), float(hi)) for key, lo, hi in zip(keys, low, high, strict=True)}
    return per_user, intervals


def _checked_cutoffs(
    ks: Sequence[int], interval_ks: Sequence[int] | None
) -> tuple[list[int], list[int]]:
    """``ks`` and ``interval_ks`` (None: every ``k``) checked, sorted and de-duplicated."""
    if isinstance(ks, Integral):
        raise InputError(f"ks must be a sequence of cut-offs, e.g. ({ks},), got {ks!r}.")
    ks = sorted({_check_k(k) for k in ks})
    if not ks:
        raise InputError("ks must hold at least one cut-off, e.g. (10,).")
    if interval_ks is None:
        return ks, ks
    if isinstance(interval_ks, Integral):
        raise InputError(f"interval_ks must be a sequence of cut-offs, got {interval_ks!r}.")
    interval_ks = sorted({_check_k(k) for k in interval_ks})
    missing = [k for k in interval_ks if k not in ks]
    if missing:
        raise InputError(
            f"interval_ks {missing} are not among the evaluated cut-offs ks={ks}; add them to ks."
        )
    return ks, interval_ks


@dataclass
class _WindowSets:
    """The train and relevant sets of a window, and who is evaluated (see the protocol).

    Attributes:
        train: ``(n_users, n_items)`` 0/1 CSR of each user's train items.
        relevant: ``(n_users, n_codes)`` 0/1 CSR of each user's relevant window items.
        users: The evaluated users, sorted.
        n_relevant: Their numbers of relevant items.
        n_items: The catalogue size.
        counts: The result's ``counts``.
    """

    train: sp.csr_matrix
    relevant: sp.csr_matrix
    users: np.ndarray
    n_relevant: np.ndarray
    n_items: int
    counts: dict[str, int | float]


def _window_sets(
    train: tuple[np.ndarray, np.ndarray],
    window: tuple[np.ndarray, np.ndarray],
    n_users: int,
    n_items: int,
) -> _WindowSets:
    """Check the id arrays and build the sets :func:`evaluate` scores against.

    Args:
        train: ``(train_user_idx, train_item_idx)`` as :func:`evaluate` got them.
        window: ``(window_user_idx, window_item_idx)`` as :func:`evaluate` got them.
        n_users: Number of encoded users (checked by the caller).
        n_items: Number of encoded train items (checked by the caller).
    """
    n_users, n_items = int(n_users), int(n_items)
    train_users = _as_index_array("train_user_idx", train[0])
    train_items = _as_index_array("train_item_idx", train[1])
    window_users = _as_index_array("window_user_idx", window[0])
    window_items = _as_index_array("window_item_idx", window[1])
    for kind, users, items in (
        ("train", train_users, train_items),
        ("window", window_users, window_items),
    ):
        if users.size != items.size:
            raise InputError(
                f"{kind}_user_idx has {users.size} entries but {kind}_item_idx has "
                f"{items.size}; they must be the two columns of the same interactions."
            )
    _check_range("train_user_idx", train_users, 0, n_users)
    _check_range("train_item_idx", train_items, 0, n_items)
    _check_range("window_user_idx", window_users, np.iinfo(np.int64).min, n_users)
    _check_range("window_item_idx", window_items, 0, None)

    n_codes = max(n_items, int(window_items.max()) + 1 if window_items.size else 0)
    cold = window_users < 0
    warm_users = window_users[~cold]
    train_csr = _binary_csr(train_users, train_items, (n_users, n_codes))
    window_csr = _binary_csr(warm_users, window_items[~cold], (n_users, n_codes))
    # Items the user already has in train are not something left to recommend.
    relevant = window_csr - window_csr.multiply(train_csr)
    relevant.eliminate_zeros()
    relevant = _canonical_csr(relevant)

    n_relevant_all = np.diff(relevant.indptr)
    warm_window_users = np.unique(warm_users)
    users = warm_window_users[n_relevant_all[warm_window_users] > 0]
    n_relevant = n_relevant_all[users]
    cold_user_count = int(np.unique(window_users[cold]).size)
    relevant_pairs = int(n_relevant.sum())
    unseen_pairs = int((relevant[users].indices >= n_items).sum()) if users.size else 0
    counts: dict[str, int | float] = {
        "window_users": int(warm_window_users.size) + cold_user_count,
        "cold_users": cold_user_count,
        "cold_interactions": int(cold.sum()),
        "evaluated_users": int(users.size),
        "skipped_users": int(warm_window_users.size - users.size),
        "relevant_pairs": relevant_pairs,
        "unseen_item_share": unseen_pairs / relevant_pairs if relevant_pairs else float("nan"),
    }
    return _WindowSets(train_csr[:, :n_items], relevant, users, n_relevant, n_items, counts)


def _hits_and_first_ranks(
    recommend: RecommendFn, sets: _WindowSets, k_max: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ask the model for ``k_max`` items per evaluated user, batch by batch.

    Returns:
        The hit matrix (evaluated users x ``k_max`` booleans) and, per item, the best
        (0-based) rank at which it is listed for any evaluated user (``k_max`` if never), so
        coverage at ``k`` counts the items with a first rank below ``k``.
    """
    users = sets.users
    hit_batches: list[np.ndarray] = []
    first_rank = np.full(sets.n_items, k_max, dtype=np.int64)
    for start in range(0, users.size, batch_size):
        batch = users[start : start + batch_size]
        items = _checked_recommendations(recommend, batch, k_max, sets.n_items, sets.train[batch])
        hit_batches.append(_in_rows(sets.relevant[batch], items))
        for rank in range(k_max):
            column = items[:, rank]
            column = column[column != PAD_ITEM]
            first_rank[column] = np.minimum(first_rank[column], rank)
    hits = np.concatenate(hit_batches) if hit_batches else np.zeros((0, k_max), dtype=bool)
    return hits, first_rank
