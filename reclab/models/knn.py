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
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

from reclab.models.base import TrainData, ValidationWindow
from reclab.models.item_item import ItemItemRecommender
from reclab.models.params import check_field

logger = logging.getLogger(__name__)

KNN_WEIGHTINGS = ("raw", "log", "bm25")


@dataclass(frozen=True)
class ItemKNNParams:
    """Hyper-parameters of :class:`ItemKNNRecommender`.

    Attributes:
        n_neighbors: Neighbours kept per item (the item itself never counts); capped at
            ``n_items - 1``.
        shrinkage: Shrinks each similarity to ``sim * co / (co + shrinkage)``, where ``co`` is
            the number of users who have both items; 0 turns it off.
        use_weights: Build the item vectors from the interaction weights (summed per
            user-item pair) instead of 0/1. The user side of the score is binary either way.
        weighting: How the summed weights enter the item vectors when ``use_weights`` is set:
            ``"raw"`` as they are, ``"log"`` as ``log(1 + w)``, ``"bm25"`` through implicit's
            ``bm25_weight`` (K1 100, B 0.8; items as documents, as in ALS). Heavy-tailed
            counts (plays, purchases) make a raw cosine follow a few huge counts; ``log`` and
            ``bm25`` damp them.
        item_batch_size: Items whose neighbours are searched at once; bounds the memory of the
            neighbour search (about ``item_batch_size * n_items * 8`` bytes).
    """

    n_neighbors: int = 50
    shrinkage: float = 0.0
    use_weights: bool = False
    weighting: str = "raw"
    item_batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.weighting not in KNN_WEIGHTINGS:
            raise ValueError(
                f"weighting must be one of {', '.join(KNN_WEIGHTINGS)}, got {self.weighting!r}"
            )
        check_field(self, "n_neighbors", 1, integer=True)
        check_field(self, "shrinkage", 0)
        check_field(self, "item_batch_size", 1, integer=True)


class ItemKNNRecommender(ItemItemRecommender):
    """Scores items by the summed cosine similarity to the user's train items' neighbours.

    The user side of the score is binary (``weights`` of a fold-in and of an explanation are
    ignored). Hyper-parameters: :class:`ItemKNNParams`.
    """

    family = "item_knn"
    Params = ItemKNNParams
    binary_user_side = True

    def _fit(self, train: TrainData, validation: ValidationWindow | None) -> None:
        params = self.hparams
        if params.use_weights:
            item_users = weighted_item_vectors(train.matrix.T.tocsr(), params.weighting)
        else:
            item_users = train.seen.T.tocsr()
        self.item_similarity = neighbour_matrix(
            item_users.astype(np.float64),
            params.n_neighbors,
            params.shrinkage,
            params.item_batch_size,
        )
        logger.info(
            "item_knn: %d items, %d neighbour similarities kept",
            self.n_items,
            self.item_similarity.nnz,
        )

    def _user_rows(self, user_idx: np.ndarray) -> sp.csr_matrix:
        return self._seen[user_idx].astype(np.float32)


def weighted_item_vectors(item_users: sp.csr_matrix, weighting: str) -> sp.csr_matrix:
    """Item x user vectors of summed weights, transformed by ``weighting`` (see the params)."""
    if weighting == "raw":
        return item_users
    if weighting == "log":
        logged = item_users.astype(np.float64)
        logged.data = np.log1p(np.maximum(logged.data, 0.0))
        return logged
    from implicit.nearest_neighbours import bm25_weight

    return bm25_weight(item_users.astype(np.float64), K1=100, B=0.8).tocsr()


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
