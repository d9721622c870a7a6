"""Recency-weighted popularity: the baseline to beat on time-window splits.

On a split that holds out the weeks after the training window, what is popular *now* predicts
the next weeks better than what was popular over the whole history. Each train interaction
counts ``2 ** (-(T - t) / half_life)``, where ``T`` is the last train timestamp (the end of the
training window): an interaction one half-life old counts 0.5, two half-lives 0.25.
"""

from __future__ import annotations

import logging

import numpy as np

from reclab.models.base import GlobalRankingRecommender, TrainData
from reclab.models.params import check_number

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0


class RecencyPopularityRecommender(GlobalRankingRecommender):
    """Ranks items by time-decayed interaction counts; ties go to the smaller raw item id.

    Without timestamps (``train.ts is None``) it falls back to plain counts, like
    ``popularity``, and logs a warning.

    Args:
        half_life_days: Age, in days before the last train timestamp, at which an interaction
            counts half.

    Raises:
        ValueError: If ``half_life_days`` is not positive.
    """

    family = "recent_popularity"

    def __init__(self, half_life_days: float = 30.0) -> None:
        check_number("half_life_days", half_life_days, 0, low_open=True)
        super().__init__(half_life_days=half_life_days)
        self.half_life_days = float(half_life_days)

    def _fit(self, train: TrainData) -> None:
        self.item_counts = decayed_counts(train, self.half_life_days)
        # Fold the raw-id tie-break into a strict order so the score itself is the ranking.
        order = np.lexsort((train.item_ids, -self.item_counts))
        rank = np.empty(train.n_items, dtype=np.int64)
        rank[order] = np.arange(train.n_items)
        self.item_scores = (train.n_items - rank).astype(np.float32)


def decayed_counts(train: TrainData, half_life_days: float) -> np.ndarray:
    """Per-item sum of ``2 ** (-(T - t) / half_life)`` over train interactions.

    Args:
        train: Train interactions; ``ts`` in epoch seconds, or None.
        half_life_days: Half-life in days.

    Returns:
        float64 array (n_items,); plain counts when ``train.ts`` is None.

    Raises:
        ValueError: If some timestamps are missing (NaN) but not all.
    """
    if train.ts is None:
        logger.warning("recent_popularity: the train data has no timestamps; using plain counts")
        return np.bincount(train.item_idx, minlength=train.n_items).astype(np.float64)
    ts = np.asarray(train.ts, dtype=np.float64)
    if np.isnan(ts).any():
        raise ValueError("recent_popularity: some train timestamps are missing (NaN)")
    if ts.size == 0:
        return np.zeros(train.n_items, dtype=np.float64)
    age_days = (ts.max() - ts) / SECONDS_PER_DAY
    weights = np.exp2(-age_days / half_life_days)
    return np.bincount(train.item_idx, weights=weights, minlength=train.n_items)
