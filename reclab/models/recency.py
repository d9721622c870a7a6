"""Recency-weighted popularity: the baseline to beat on time-window splits.

On a split that holds out the weeks after the training window, what is popular *now* predicts
the next weeks better than what was popular over the whole history. Each train interaction
counts ``2 ** (-(T - t) / half_life)``, where ``T`` is the last train timestamp (the end of the
training window): an interaction one half-life old counts 0.5, two half-lives 0.25.

The same per-interaction weight (:func:`recency_weights`) is what the personalised families'
``recency_half_life_days`` applies (item KNN, EASE, ALS: :func:`recency_weighted_matrix`), so
"half-life" means one thing everywhere; without timestamps it is a no-op with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from reclab.models.base import GlobalRankingRecommender, TrainData, ValidationWindow
from reclab.models.params import check_field, set_field

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class RecencyParams:
    """Hyper-parameters of :class:`RecencyPopularityRecommender`.

    Attributes:
        half_life_days: Age, in days before the last train timestamp, at which an interaction
            counts half (> 0).
    """

    half_life_days: float = 30.0

    def __post_init__(self) -> None:
        check_field(self, "half_life_days", 0, low_open=True)


class RecencyPopularityRecommender(GlobalRankingRecommender):
    """Ranks items by time-decayed interaction counts; ties go to the smaller raw item id.

    Without timestamps (``train.ts is None``) it falls back to plain counts, like
    ``popularity``, and logs a warning. Hyper-parameters: :class:`RecencyParams`.
    """

    family = "recent_popularity"
    Params = RecencyParams

    def _fit(self, train: TrainData, validation: ValidationWindow | None) -> None:
        self._rank_items(decayed_counts(train, self.hparams.half_life_days), train.item_ids)


def decayed_counts(train: TrainData, half_life_days: float) -> np.ndarray:
    """Per-item sum of ``2 ** (-(T - t) / half_life)`` over train interactions
    (:func:`recency_weights`).

    Args:
        train: Train interactions; ``ts`` in epoch seconds, or None.
        half_life_days: Half-life in days.

    Returns:
        float64 array (n_items,); plain counts when ``train.ts`` is None.

    Raises:
        ValueError: If some timestamps are missing (NaN) but not all.
    """
    weights = recency_weights(train, half_life_days, "recent_popularity")
    return np.bincount(train.item_idx, weights=weights, minlength=train.n_items).astype(np.float64)


def recency_weights(
    train: TrainData, half_life_days: float, family: str, per_user: bool = False
) -> np.ndarray | None:
    """Each train interaction's recency weight ``2 ** (-(T - t) / half_life)``, the one
    time-decay weight the families share (``T``: the last train timestamp).

    Args:
        train: Train interactions; ``ts`` in epoch seconds, or None.
        half_life_days: Half-life in days; 0 turns the weighting off.
        family: The family asking, for the warning.
        per_user: Measure ages from each user's own last interaction instead of ``T``: the
            same weights up to one factor per user (so the same ranking for a score linear in a
            user's row), without underflowing to 0 for users inactive for hundreds of
            half-lives.

    Returns:
        float64 array (n,) in [0, 1]: 1 at ``T``, 0.5 one half-life before it. None when the
        weighting is off or the train data has no timestamps (play counts: a normal input, so
        a warning is logged instead of an error).

    Raises:
        ValueError: If some timestamps are missing (NaN) but not all.
    """
    if half_life_days == 0:
        return None
    if train.ts is None:
        logger.warning(
            "%s: the train data has no timestamps; the recency half-life (%g days) is ignored",
            family,
            half_life_days,
        )
        return None
    ts = np.asarray(train.ts, dtype=np.float64)
    if np.isnan(ts).any():
        raise ValueError(f"{family}: some train timestamps are missing (NaN)")
    if ts.size == 0:
        return np.ones(0, dtype=np.float64)
    if per_user:
        # Each user's last timestamp (np.maximum.at is unbuffered and slow in NumPy < 1.25).
        users = np.asarray(train.user_idx, np.int64)
        latest = latest_of_each(users, ts)
        user_last = np.zeros(train.n_users)
        user_last[users[latest]] = ts[latest]
        end = user_last[users]
    else:
        end = ts.max()
    return np.exp2(-(end - ts) / SECONDS_PER_DAY / half_life_days)


def recency_weighted_matrix(
    train: TrainData,
    half_life_days: float,
    family: str,
    use_weights: bool,
    per_user: bool = False,
) -> sp.csr_matrix | None:
    """The user x item matrix a family fits on (or scores), each interaction scaled by its
    recency weight (:func:`recency_weights`).

    With ``use_weights`` a pair holds the sum of ``weight * recency`` over its interactions
    (``train.matrix`` with decay); without, the pair's binary 1 becomes the recency weight of
    its latest interaction (``train.seen`` with decay), so repeats do not count more.

    Args:
        train: Train interactions.
        half_life_days: Half-life in days; 0 turns the weighting off.
        family: The family asking, for the warning.
        use_weights: Scale the summed interaction weights instead of the binary matrix.
        per_user: Ages from each user's last interaction (for the user rows a family scores).

    Returns:
        float64 CSR (n_users, n_items) with ``train.seen``'s pattern; None when the weighting
        is off or there are no timestamps (:func:`recency_weights`): the caller keeps its
        unweighted matrix.
    """
    decay = recency_weights(train, half_life_days, family, per_user)
    if decay is None:
        return None
    users, items = _pairs(train)
    if use_weights:
        values = np.asarray(train.weight, np.float64) * decay
    else:
        # Per (user, item) pair keep the largest decay, i.e. the latest interaction.
        kept = latest_of_each(users * train.n_items + items, decay)
        values, users, items = decay[kept], users[kept], items[kept]
    matrix = sp.csr_matrix((values, (users, items)), shape=(train.n_users, train.n_items))
    matrix.sum_duplicates()
    return matrix


def latest_of_each(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each distinct key, the index of its row with the largest value (vectorised: sorted
    by key then value, the last row of each key's run)."""
    order = np.lexsort((values, keys))
    last = np.ones(len(order), dtype=bool)
    last[:-1] = keys[order][1:] != keys[order][:-1]
    return order[last]


def _pairs(train: TrainData) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(train.user_idx, np.int64), np.asarray(train.item_idx, np.int64)


def check_recency_half_life(params: Any) -> None:
    """Check a family's ``recency_half_life_days`` field (>= 0; 0 or None mean off, stored 0)."""
    check_field(params, "recency_half_life_days", 0, allow_none=True)
    set_field(params, "recency_half_life_days", params.recency_half_life_days or 0.0)
