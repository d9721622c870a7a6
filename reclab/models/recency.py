"""Recency-weighted popularity: the baseline to beat on time-window splits.

On a split that holds out the weeks after the training window, what is popular *now* predicts
the next weeks better than what was popular over the whole history. Each train interaction
counts ``2 ** (-(T - t) / half_life)``, where ``T`` is the last train timestamp (the end of the
training window): an interaction one half-life old counts 0.5, two half-lives 0.25.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from reclab.models.base import GlobalRankingRecommender, TrainData, ValidationWindow
from reclab.models.params import check_field

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
