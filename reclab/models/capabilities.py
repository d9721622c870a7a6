"""What a family can do beyond ``recommend``: small mixins that serving checks with isinstance.

A family declares a capability by inheriting its mixin and implementing its one method::

    class SARRecommender(Recommender, FoldIn, ItemSimilarity, Explains): ...

Serving routes a request by ``isinstance(model, FoldIn)`` (and so on), never by a flag, so a
family cannot claim a capability without the method that provides it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class FoldIn(ABC):
    """Scores a user who is not in train from that user's items (cold start with a history)."""

    @abstractmethod
    def fold_in_scores(self, item_idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Scores over all items for a user who is not in train, given their items.

        Args:
            item_idx: Encoded items of the new user's history (distinct).
            weights: Optional weight (rating) per item; None means 1 for every item.

        Returns:
            float32 array (n_items,); the history items are not excluded here.
        """


class ItemSimilarity(ABC):
    """Knows how similar two items are ("more like this")."""

    @abstractmethod
    def item_similarity_scores(self, item_idx: int) -> np.ndarray:
        """Similarity of one item to every item, -inf where the family knows none.

        Args:
            item_idx: One encoded item.

        Returns:
            float32 array (n_items,); the item itself is set to -inf.
        """


class Explains(ABC):
    """Says which of a user's items produced a recommended item's score."""

    @abstractmethod
    def explain(
        self,
        history_idx: np.ndarray,
        history_weights: np.ndarray,
        item_idx: np.ndarray,
        k: int = 3,
    ) -> list[list[tuple[int, float]]]:
        """For each recommended item, the history items that contributed most to its score.

        Args:
            history_idx: Encoded items of the user's history.
            history_weights: Their weights (affinity for SAR, 1 for item KNN).
            item_idx: Encoded recommended items.
            k: History items per recommended item.

        Returns:
            Per recommended item, up to k ``(history item_idx, contribution)`` pairs with a
            positive contribution, largest first.
        """
