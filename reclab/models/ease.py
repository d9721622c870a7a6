"""EASE (Steck, 2019): a closed-form linear item-item model, one of the strongest simple baselines.

EASE learns an item x item weight matrix ``B`` with a zero diagonal that reconstructs the user x
item matrix ``X`` as ``X @ B`` under an L2 penalty ``l2``. The solution is closed form::

    P = (X^T X + l2 * I)^-1
    B = -P / diag(P)   (column-wise), diag(B) = 0

and a user's scores are ``x_u @ B``. ``B`` is dense, so it costs ``4 * n^2`` bytes for ``n``
items (float32): 1.6 GB at 20k items, 10 GB at 50k. The Gram matrix is built a block of columns
at a time and inverted in place (Cholesky, LAPACK ``potrf`` / ``potri``), so the fit holds one
such matrix plus a block. Above ``max_items`` the model is fitted on the most popular
``max_items`` items only (the others are never recommended, and the leaderboard's
``train_sample`` says so); a fit whose matrix would not fit in the memory available is refused
before it starts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import psutil
import scipy.linalg
import scipy.sparse as sp

from reclab.models.base import Recommender, TrainData, ValidationWindow, encoded_indices
from reclab.models.capabilities import Explains, FoldIn, ItemSimilarity
from reclab.models.item_item import ranked_contributions
from reclab.models.params import check_field, set_field
from reclab.models.recency import check_recency_half_life, recency_weighted_matrix

logger = logging.getLogger(__name__)

# Dense item x item matrices the fit holds at its peak (the Gram matrix, inverted in place).
FIT_MATRICES = 1


def ease_fit_bytes(n_items: int) -> int:
    """Peak bytes of :func:`ease_weights` for ``n_items`` items (float32 matrices)."""
    return FIT_MATRICES * 4 * int(n_items) ** 2


def ease_weights(matrix: sp.csr_matrix, l2: float) -> np.ndarray:
    """EASE's item x item weights ``B`` (float32, zero diagonal) for a user x item matrix.

    Args:
        matrix: User x item matrix (binary or weighted), CSR.
        l2: The L2 penalty added to the Gram matrix's diagonal (> 0).

    Returns:
        ``B``, float32 array (n_items, n_items); a user's scores are ``x_u @ B``.

    Raises:
        ValueError: If the regularised Gram matrix is not positive definite (l2 too small for
            float32 on this data).
    """
    started = time.perf_counter()
    gram = gram_matrix(matrix)
    gram[np.diag_indices_from(gram)] += np.float32(l2)
    # Cholesky in place (gram is Fortran-ordered, so LAPACK needs no copy): the regularised Gram
    # matrix is symmetric positive definite once l2 > 0.
    factor, info = scipy.linalg.lapack.spotrf(gram, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise ValueError(
            f"EASE: the Gram matrix + l2={l2} is not positive definite in float32 (LAPACK info "
            f"{info}); use a larger l2"
        )
    inverse, info = scipy.linalg.lapack.spotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise ValueError(f"EASE: inverting the Gram matrix failed (LAPACK info {info})")
    del gram, factor
    _mirror_upper(inverse)
    # P is symmetric, so its transpose is P itself, C-ordered: scoring reads B by rows, and a
    # Fortran-ordered B made each row a strided walk (recommend 518 s for 65k users at 20k
    # items).
    weights = inverse.T
    diagonal = np.diag(weights).copy()
    weights /= -diagonal[np.newaxis, :]
    weights[np.diag_indices_from(weights)] = 0.0
    logger.info(
        "ease: %d items, l2=%g, fitted in %.2f s",
        weights.shape[0],
        l2,
        time.perf_counter() - started,
    )
    return weights


def gram_matrix(matrix: sp.csr_matrix, block: int = 2048) -> np.ndarray:
    """``X^T X`` as a dense float32 Fortran-ordered array, built a block of columns at a time.

    One sparse product of the whole matrix would hold the Gram matrix twice (sparse, then
    dense); by blocks the sparse part is at most ``n_items x block``.
    """
    columns = matrix.astype(np.float32).tocsc()
    transposed = columns.T.tocsr()
    n_items = matrix.shape[1]
    gram = np.empty((n_items, n_items), dtype=np.float32, order="F")
    for start in range(0, n_items, block):
        stop = min(n_items, start + block)
        gram[:, start:stop] = (transposed @ columns[:, start:stop]).toarray()
    return gram


def _mirror_upper(square: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle onto the lower one in place, a block of rows at a time.

    LAPACK's ``potri`` fills only the upper triangle; index arrays of the whole lower triangle
    would cost 16 bytes an entry (3.2 GB at 20k items), blocks cost one block's copy.
    """
    n = square.shape[0]
    for start in range(0, n, block):
        stop = min(n, start + block)
        square[start:stop, :start] = square[:start, start:stop].T
        diagonal_block = square[start:stop, start:stop]
        square[start:stop, start:stop] = np.triu(diagonal_block) + np.triu(diagonal_block, 1).T


@dataclass(frozen=True)
class EASEParams:
    """Hyper-parameters of :class:`EASERecommender`.

    Attributes:
        l2: L2 penalty on ``B`` (added to the Gram matrix's diagonal). It is on the scale of
            item counts: catalogues with more interactions per item want larger values.
        max_items: Largest catalogue fitted; above it only the ``max_items`` items with the most
            users are kept (``4 * max_items^2`` bytes: 20,000 items take 1.6 GB).
        use_weights: Fit on the interaction weights (summed per user-item pair) instead of 0/1.
        recency_half_life_days: Scales each train interaction by ``2 ** (-age / half_life)``
            (age in days before the last train timestamp) in the matrix ``B`` is fitted on and
            in the user rows scored; without ``use_weights`` a pair's 1 becomes its latest
            interaction's weight. 0 turns it off; without timestamps it is ignored (a warning).
    """

    l2: float = 500.0
    max_items: int = 20_000
    use_weights: bool = False
    recency_half_life_days: float = 0.0

    def __post_init__(self) -> None:
        check_field(self, "l2", 0, low_open=True)
        check_field(self, "max_items", 2, integer=True)
        set_field(self, "use_weights", bool(self.use_weights))
        check_recency_half_life(self)


class EASERecommender(Recommender, FoldIn, ItemSimilarity, Explains):
    """EASE: scores ``x_u @ B`` with the closed-form item x item weights ``B``."""

    family = "ease"
    Params = EASEParams
    format_version = 2  # 2: recency_half_life_days

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.weights: np.ndarray | None = None  # B over the kept items
        self.kept_items: np.ndarray | None = None  # catalogue index of each row/column of B
        self._user_rows: sp.csr_matrix | None = None  # train x over the kept items (scored)

    def _fit(self, train: TrainData, validation: ValidationWindow | None) -> None:
        params = self.hparams
        decayed = recency_weighted_matrix(
            train, params.recency_half_life_days, self.family, params.use_weights
        )
        if decayed is not None:
            matrix = decayed.astype(np.float32)
        elif params.use_weights:
            matrix = train.matrix
        else:
            matrix = train.seen.astype(np.float32)
        users_per_item = np.diff(matrix.tocsc().indptr)
        kept = np.arange(self.n_items, dtype=np.int64)
        if self.n_items > self.hparams.max_items:
            # Most users first, ties to the smaller index (a stable sort of the negated counts).
            kept = np.sort(np.argsort(-users_per_item, kind="stable")[: self.hparams.max_items])
            self.train_sample = (
                f"items: the {len(kept):,} with the most users of {self.n_items:,} (max_items)"
            )
        _check_memory(len(kept))
        self.kept_items = kept
        fitted_rows = matrix[:, kept].tocsr()
        self.weights = ease_weights(fitted_rows, self.hparams.l2)
        self._user_rows = fitted_rows
        if decayed is not None:
            # Scores x_u @ B rank the same under a per-user scale: the scored rows are aged from
            # each user's last interaction, so long-inactive users do not underflow to 0.
            own = recency_weighted_matrix(
                train, params.recency_half_life_days, self.family, params.use_weights, True
            )
            self._user_rows = own[:, kept].astype(np.float32).tocsr()

    def _scores_into(self, user_idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        return self._spread(np.asarray(self._user_rows[user_idx] @ self.weights), out)

    def fold_in_scores(self, item_idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        item_idx = encoded_indices(item_idx, self.n_items, "item_idx")
        history = np.zeros(self.n_items, dtype=np.float32)
        history[item_idx] = 1.0 if weights is None or not self.hparams.use_weights else weights
        scores = history[self.kept_items] @ self.weights
        return self._spread(scores[None, :], np.empty((1, self.n_items), np.float32))[0]

    def user_history(self, user_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """A known user's scored row over the kept items: its items and their weights (1, the
        summed weights, or the recency-weighted values)."""
        row = self._user_rows[int(user_idx)]
        return self.kept_items[row.indices].astype(np.int64), row.data.astype(np.float32)

    def item_similarity_scores(self, item_idx: int) -> np.ndarray:
        item_idx = int(encoded_indices([item_idx], self.n_items, "item_idx")[0])
        position = int(self._positions(np.array([item_idx]))[0])
        out = np.full(self.n_items, -np.inf, dtype=np.float32)
        if position >= 0:
            out[self.kept_items] = self.weights[position]
            out[item_idx] = -np.inf
        return out

    def explain(
        self,
        history_idx: np.ndarray,
        history_weights: np.ndarray,
        item_idx: np.ndarray,
        k: int = 3,
    ) -> list[list[tuple[int, float]]]:
        history_idx = np.asarray(history_idx, dtype=np.int64)
        item_idx = np.asarray(item_idx, dtype=np.int64)
        rows, cols = self._positions(history_idx), self._positions(item_idx)
        terms = np.zeros((len(history_idx), len(item_idx)), dtype=np.float64)
        known_rows, known_cols = rows >= 0, cols >= 0
        terms[np.ix_(known_rows, known_cols)] = self.weights[
            np.ix_(rows[known_rows], cols[known_cols])
        ]
        return ranked_contributions(terms, history_idx, history_weights, k)

    def _positions(self, item_idx: np.ndarray) -> np.ndarray:
        """Row of ``B`` for each catalogue item, -1 for items not kept."""
        position = np.minimum(np.searchsorted(self.kept_items, item_idx), len(self.kept_items) - 1)
        return np.where(self.kept_items[position] == item_idx, position, -1)

    def _spread(self, kept_scores: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Scores over the kept items written into ``out`` over the catalogue (-inf elsewhere)."""
        if len(self.kept_items) == self.n_items:
            out[:] = kept_scores
            return out
        out.fill(-np.inf)
        out[:, self.kept_items] = kept_scores
        return out


def _check_memory(n_items: int) -> None:
    """Refuse a fit whose dense matrix would not fit in the memory available now."""
    needed = ease_fit_bytes(n_items)
    available = psutil.virtual_memory().available
    if needed > 0.8 * available:
        raise ValueError(
            f"EASE on {n_items:,} items needs {needed / 1e9:.1f} GB for its item x item matrix, "
            f"but {available / 1e9:.1f} GB are available; lower max_items (e.g. "
            f"{int((0.4 * available / 4) ** 0.5):,}) or use a machine with more memory"
        )
