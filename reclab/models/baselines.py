"""Baseline families: the bars every real model must clear.

``popularity`` is the honest baseline on time-window splits; ``random`` is the floor that shows
what chance looks like under the evaluator (recall about k / n_items).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reclab.models.base import (
    GlobalRankingRecommender,
    Recommender,
    TrainData,
    ValidationWindow,
)
from reclab.models.params import check_field
from reclab.popularity import interaction_counts


class PopularityRecommender(GlobalRankingRecommender):
    """Ranks items by their number of train interactions; ties go to the smaller raw item id."""

    family = "popularity"

    def _fit(self, train: TrainData, validation: ValidationWindow | None) -> None:
        # The one popularity definition, shared with serving's cold-start list.
        self._rank_items(interaction_counts(train.item_idx, train.n_items), train.item_ids)


@dataclass(frozen=True)
class RandomParams:
    """Hyper-parameters of :class:`RandomRecommender`.

    Attributes:
        seed: Seeds each user's ranking (with the user index).
    """

    seed: int = 0

    def __post_init__(self) -> None:
        check_field(self, "seed", 0, integer=True)


class RandomRecommender(Recommender):
    """Uniformly random ranking, reproducible from ``seed`` and the user index."""

    family = "random"
    Params = RandomParams

    def _fit(self, train: TrainData, validation: ValidationWindow | None) -> None:
        pass

    def _scores_into(self, user_idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        # One generator per user keeps a user's ranking independent of how users are batched.
        for row, user in enumerate(user_idx):
            np.random.default_rng([self.hparams.seed, int(user)]).random(
                dtype=np.float32, out=out[row]
            )
        return out
