"""Item-based k-nearest-neighbour recommender, built the way scikit-learn item-KNN systems are.

Each item is a vector over users (a row of the item x user matrix). scikit-learn's brute-force
cosine ``NearestNeighbors`` finds every item's ``n_neighbors`` most similar items; those
similarities, optionally shrunk towards zero when few users support them, form a sparse
item x item neighbour matrix ``S``. A user's score for item ``j`` is the sum of ``S[i, j]`` over
the items ``i`` the user has in train, i.e. ``user_binary @ S``: every train item of the user
votes for its own ``n_neighbors`` nearest neighbours with their similarity.

Only ``n_items * n_neighbors`` similarities are stored, and the neighbour search runs in item
batches, so memory stays bounded for catalogues of tens of thousands of items. ``recommend``
scores with :func:`reclab.models.item_item.top_k_item_item` (one row buffer per thread, top k
in the same pass), so no dense users x items batch is built.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

from reclab.models.base import (
    Recommender,
    TrainData,
    check_list_length,
    encoded_indices,
    explain_item_item,
    sparse_similarity_row,
)
from reclab.models.capabilities import Explains, FoldIn, ItemSimilarity
from reclab.models.item_item import top_k_item_item
from reclab.models.params import check_number

logger = logging.getLogger(__name__)


class ItemKNNRecommender(Recommender, FoldIn, ItemSimilarity, Explains):
    """Scores items by the summed cosine similarity to the user's train items' neighbours.

    Args:
        n_neighbors: Neighbours kept per item (the item itself never counts); capped at
            ``n_items - 1``.
        shrinkage: Shrinks each similarity to ``sim * co / (co + shrinkage)``, where ``co`` is
            the number of users who have both items; 0 turns it off.
        use_weights: Build the item vectors from the interaction weights (summed per
            user-item pair) instead of 0/1. The user side of the score is binary either way.
        item_batch_size: Items whose neighbours are searched at once; bounds the memory of the
            neighbour search (about ``item_batch_size * n_items * 8`` bytes).

    Raises:
        ValueError: If a parameter is out of range.
    """

    family = "item_knn"
    can_fold_in = True
    can_find_similar = True
    can_explain = True

    def __init__(
        self,
        n_neighbors: int = 50,
        shrinkage: float = 0.0,
        use_weights: bool = False,
        item_batch_size: int = 1024,
    ) -> None:
        check_number("n_neighbors", n_neighbors, 1, integer=True)
        check_number("shrinkage", shrinkage, 0)
        check_number("item_batch_size", item_batch_size, 1, integer=True)
        super().__init__(
            n_neighbors=n_neighbors,
            shrinkage=shrinkage,
            use_weights=use_weights,
            item_batch_size=item_batch_size,
        )
        self.n_neighbors = int(n_neighbors)
        self.shrinkage = float(shrinkage)
        self.use_weights = bool(use_weights)
        self.item_batch_size = int(item_batch_size)
        self.similarity: sp.csr_matrix | None = None

    def _fit(self, train: TrainData) -> None:
        item_users = train.matrix.T.tocsr() if self.use_weights else train.seen.T.tocsr()
        item_users = item_users.astype(np.float64)
        self.similarity = neighbour_matrix(
            item_users, self.n_neighbors, self.shrinkage, self.item_batch_size
        )
        logger.info(
            "item_knn: %d items, %d neighbour similarities kept",
            self.n_items,
            self.similarity.nnz,
        )

    def recommend(
        self, user_idx: np.ndarray, k: int, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items for each user by summed neighbour similarity; see :class:`Recommender`.

        Scored by the compiled kernel; the lists equal the dense scores' top k.
        """
        if self.similarity is None or self._seen is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        check_list_length(k)
        user_idx = encoded_indices(user_idx, self.n_users, "user_idx")
        seen = self._seen[user_idx]
        return top_k_item_item(seen, self.similarity, seen if exclude_seen else None, k)

    def _scores(self, user_idx: np.ndarray) -> np.ndarray:
        user_items = self._seen[user_idx].astype(np.float32)
        return np.asarray((user_items @ self.similarity).toarray(), dtype=np.float32)

    def fold_in_scores(self, item_idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Scores of a new user: the summed neighbour similarities of their items.

        The user side is binary, as in :meth:`_scores`, so ``weights`` is ignored.

        Args:
            item_idx: Encoded items of the new user's history (distinct).
            weights: Ignored (item KNN scores a user's items as 0/1).

        Returns:
            float32 array (n_items,).
        """
        if self.similarity is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        item_idx = np.asarray(item_idx, dtype=np.int64)
        return np.asarray(self.similarity[item_idx].sum(axis=0), dtype=np.float32).ravel()

    def item_similarity_scores(self, item_idx: int) -> np.ndarray:
        """The item's stored neighbour similarities, -inf for items that are not neighbours."""
        if self.similarity is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        return sparse_similarity_row(self.similarity, item_idx)

    def explain(
        self,
        history_idx: np.ndarray,
        history_weights: np.ndarray,
        item_idx: np.ndarray,
        k: int = 3,
    ) -> list[list[tuple[int, float]]]:
        """History items whose neighbour similarity adds most to each recommended item's score.

        Args:
            history_idx: Encoded history items.
            history_weights: Ignored: the user side of item KNN is binary.
            item_idx: Encoded recommended items.
            k: Contributors per recommended item.

        Returns:
            Per item, up to k ``(item_idx, similarity)`` pairs, largest first.
        """
        ones = np.ones(len(history_idx), dtype=np.float32)  # the user side is binary
        return explain_item_item(self.similarity, history_idx, ones, item_idx, k)

    def similar_items(self, item_idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest neighbours of each item, most similar first, never the item itself.

        Neighbours come from the fitted neighbour matrix, so at most ``n_neighbors`` per item;
        ties go to the smaller item index.

        Args:
            item_idx: Encoded items, shape (n,).
            k: Neighbours per item.

        Returns:
            (item_idx int64 (n, k), similarity float32 (n, k)), best first; where an item has
            fewer than ``k`` neighbours the row is padded with item -1 and score -inf.

        Raises:
            ValueError: If the model is not fitted, k < 1, or an item is out of range.
        """
        if self.similarity is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        check_list_length(k)
        item_idx = encoded_indices(item_idx, self.n_items, "item_idx")
        items = np.full((len(item_idx), k), -1, dtype=np.int64)
        scores = np.full((len(item_idx), k), -np.inf, dtype=np.float32)
        indptr, indices, data = (
            self.similarity.indptr,
            self.similarity.indices,
            self.similarity.data,
        )
        for row, item in enumerate(item_idx):
            cols = indices[indptr[item] : indptr[item + 1]]
            sims = data[indptr[item] : indptr[item + 1]]
            order = np.lexsort((cols, -sims))[:k]
            items[row, : len(order)] = cols[order]
            scores[row, : len(order)] = sims[order]
        return items, scores


def neighbour_matrix(
    item_vectors: sp.csr_matrix,
    n_neighbors: int,
    shrinkage: float = 0.0,
    item_batch_size: int = 1024,
) -> sp.csr_matrix:
    """Sparse item x item matrix of each item's nearest neighbours by cosine similarity.

    Row ``i`` holds ``1 - cosine_distance(i, j)`` for the ``n_neighbors`` items ``j`` closest
    to ``i`` (never ``i`` itself), optionally shrunk by ``co / (co + shrinkage)`` with ``co``
    the number of users both items share. Zero similarities are not stored.

    Args:
        item_vectors: Item x user CSR matrix (binary or weighted).
        n_neighbors: Neighbours per item; capped at ``n_items - 1``.
        shrinkage: Shrinkage constant; 0 turns shrinkage off.
        item_batch_size: Items queried per ``kneighbors`` call.

    Returns:
        float32 CSR matrix (n_items, n_items).
    """
    n_items = item_vectors.shape[0]
    n_neighbors = min(n_neighbors, n_items - 1)
    if n_neighbors < 1:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    search = NearestNeighbors(metric="cosine", algorithm="brute").fit(item_vectors)
    binary = item_vectors.copy()
    binary.data = np.ones_like(binary.data)
    rows, cols, sims = [], [], []
    for start in range(0, n_items, item_batch_size):
        batch = np.arange(start, min(start + item_batch_size, n_items))
        distances, neighbours = search.kneighbors(
            item_vectors[batch], n_neighbors=n_neighbors + 1, return_distance=True
        )
        # Drop the item itself, as kneighbors(X=None) does: where a duplicate vector put it
        # somewhere else (or not at all) drop its own column, else the farthest one.
        is_self = neighbours == batch[:, None]
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), n_neighbors)
        keep = np.ones_like(is_self)
        keep[np.arange(len(batch)), drop] = False
        neighbours = neighbours[keep].reshape(len(batch), n_neighbors)
        similarity = 1.0 - distances[keep].reshape(len(batch), n_neighbors)
        row = np.repeat(batch, n_neighbors)
        col = neighbours.ravel()
        sim = similarity.ravel()
        if shrinkage > 0:
            co = np.asarray(binary[row].multiply(binary[col]).sum(axis=1)).ravel()
            sim = sim * co / (co + shrinkage)
        positive = sim > 0
        rows.append(row[positive])
        cols.append(col[positive])
        sims.append(sim[positive])
    matrix = sp.csr_matrix(
        (
            np.concatenate(sims).astype(np.float32),
            (np.concatenate(rows), np.concatenate(cols)),
        ),
        shape=(n_items, n_items),
    )
    matrix.sort_indices()
    return matrix
