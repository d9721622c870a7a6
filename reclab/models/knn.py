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
from reclab.models.recency import check_recency_half_life, recency_weighted_matrix

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
        recency_half_life_days: Scales each train interaction by ``2 ** (-age / half_life)``
            (age in days before the last train timestamp) in the item vectors and in the user
            rows scored: a binary 1 becomes the pair's latest interaction's weight, summed
            weights (``use_weights``) are summed after scaling. 0 turns it off; without
            timestamps it is ignored (a warning).
    """

    n_neighbors: int = 50
    shrinkage: float = 0.0
    use_weights: bool = False
    weighting: str = "raw"
    item_batch_size: int = 1024
    recency_half_life_days: float = 0.0

    def __post_init__(self) -> None:
        if self.weighting not in KNN_WEIGHTINGS:
            raise ValueError(
                f"weighting must be one of {', '.join(KNN_WEIGHTINGS)}, got {self.weighting!r}"
            )
        check_field(self, "n_neighbors", 1, integer=True)
        check_field(self, "shrinkage", 0)
        check_field(self, "item_batch_size", 1, integer=True)
        check_recency_half_life(self)


class ItemKNNRecommender(ItemItemRecommender):
    """Scores items by the summed cosine similarity to the user's train items' neighbours.

    The user side of the score is binary (``weights`` of a fold-in and of an explanation are
    ignored), or with ``recency_half_life_days`` each train item's recency weight (a fold-in
    counts its items as of now; explanations still rank history items by similarity alone).
    Hyper-parameters: :class:`ItemKNNParams`.
    """

    family = "item_knn"
    Params = ItemKNNParams
    format_version = 2  # 2: recency_half_life_days
    binary_user_side = True

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._recency_rows: sp.csr_matrix | None = None  # the scored user rows, when decayed

    def _fit(self, train: TrainData, validation: ValidationWindow | None) -> None:
        params = self.hparams
        half_life = params.recency_half_life_days
        latest = recency_weighted_matrix(train, half_life, self.family, use_weights=False)
        self._recency_rows = None
        if latest is not None:
            # Scores rank the same under a per-user scale: the scored rows are aged from each
            # user's last interaction, so long-inactive users do not underflow to 0.
            own = recency_weighted_matrix(train, half_life, self.family, False, per_user=True)
            self._recency_rows = own.astype(np.float32)
        if params.use_weights:
            summed = (
                train.matrix
                if latest is None  # off, or no timestamps (warned once above)
                else recency_weighted_matrix(train, half_life, self.family, use_weights=True)
            )
            item_users = weighted_item_vectors(summed.T.tocsr(), params.weighting)
        else:
            item_users = train.seen.T.tocsr() if latest is None else latest.T.tocsr()
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
        if self._recency_rows is not None:
            return self._recency_rows[user_idx]
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
