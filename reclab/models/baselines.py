"""Baseline families: the bars every real model must clear.

``popularity`` is the honest baseline on time-window splits; ``random`` is the floor that shows
what chance looks like under the evaluator (recall about k / n_items).
"""

from __future__ import annotations

import numpy as np

from reclab.models.base import GlobalRankingRecommender, Recommender, TrainData
from reclab.models.params import check_number


class PopularityRecommender(GlobalRankingRecommender):
    """Ranks items by their number of train interactions; ties go to the smaller raw item id."""

    family = "popularity"

    def _fit(self, train: TrainData) -> None:
        counts = np.bincount(train.item_idx, minlength=train.n_items).astype(np.float64)
        # Fold the raw-id tie-break into a strict order so the score itself is the ranking.
        order = np.lexsort((train.item_ids, -counts))
        rank = np.empty(train.n_items, dtype=np.int64)
        rank[order] = np.arange(train.n_items)
        self.item_counts = counts
        self.item_scores = (train.n_items - rank).astype(np.float32)


class RandomRecommender(Recommender):
    """Uniformly random ranking, reproducible from ``seed`` and the user index."""

    family = "random"

    def __init__(self, seed: int = 0) -> None:
        check_number("seed", seed, 0, integer=True)
        super().__init__(seed=seed)
        self.seed = int(seed)

    def _fit(self, train: TrainData) -> None:
        pass

    def _scores(self, user_idx: np.ndarray) -> np.ndarray:
        # One generator per user keeps a user's ranking independent of how users are batched.
        return (
            np.stack(
                [
                    np.random.default_rng([self.seed, int(u)]).random(
                        self.n_items, dtype=np.float32
                    )
                    for u in user_idx
                ]
            )
            if len(user_idx)
            else np.empty((0, self.n_items), dtype=np.float32)
        )
