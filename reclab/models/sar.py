"""SAR (Simple Algorithm for Recommendations), sparse and vectorised.

Why this module exists: Microsoft Recommenders' ``SARSingleNode`` holds dense item x item
float64 matrices (9.6 GB at 20k items, out of memory at 30k), so we keep its semantics and do
the work on sparse matrices instead:

* **Affinity** ``A`` (users x items): for each (user, item), the sum over its interactions of
  ``value * 2 ** (-(T - t) / half_life)``, capped at ``value`` for interactions after ``T``
  (the library's ``exponential_decay`` is ``min(1, 0.5 ** ((T - t) / half_life))``). ``value`` is
  the interaction weight (rating) when ``use_weights`` is true, else 1. ``T`` is ``time_now``
  or, like the library, the latest train timestamp. Without decay the library also sums
  duplicate (user, item) rows (its ``coo -> csr`` conversion adds them up; with decay it
  groups by (user, item) and sums), and so do we, in both modes.
* **Co-occurrence** ``C = B^T B`` on the binary user x item matrix ``B`` (a user counts once per
  item however many rows they have), with entries below ``support_threshold`` set to zero,
  diagonal included. The library asks for input without duplicates; fed duplicates without
  time decay it would count them with multiplicity in ``C``; we always count distinct users.
* **Similarity** is computed on the non-zeros of ``C`` only, with ``d = diag(C)``:
  ``counts`` C_ij; ``jaccard`` C_ij / (d_i + d_j - C_ij); ``lift`` C_ij / (d_i d_j);
  ``cosine`` C_ij / sqrt(d_i d_j); ``inclusion_index`` C_ij / min(d_i, d_j);
  ``mutual_information`` log2(n_items * lift_ij); ``lexicographers_mutual_information``
  C_ij * log2(n_items * lift_ij).
* ``mutual_information`` keeps the library's ``log2(0) = -inf`` for pairs that never co-occur,
  without densifying: an item that does not co-occur with every item in a user's affinity
  scores ``-inf`` for that user (so it is never recommended; rows may be padded).
* ``lexicographers_mutual_information`` is the documented elementwise C_ij * MI_ij on the
  non-zeros. The library (1.2.1) computes ``cooccurrence * mutual_information(cooccurrence)``
  on a SciPy ``spmatrix``, where ``*`` is a matrix product, so its matrix is not this measure.
* With ``support_threshold > 1`` the library divides by a zero diagonal for items below the
  threshold (``nan`` similarities); here such items simply have no similarities.
* **Scores** ``A[users] @ S``: :func:`reclab.models.item_item.top_k_item_item` accumulates
  each user's row in a per-thread buffer and keeps its top k in the same pass (the lists equal
  the dense product's); ``scores()`` (serving) still builds the dense rows of a batch.
* **Memory.** The similarity matrix is float32 CSR, so memory grows with the non-zeros of
  ``C``, never with ``n_items ** 2``; ``C`` itself is counted item row by item row
  (:mod:`reclab.models.item_item`) and stored at its exact size. Those non-zeros grow with the
  square of the items a user has: on a MovieLens-25M-shaped catalogue (59k items, 154 items a
  user) 39% of all item pairs co-occur, 1.35 billion entries (11 GB). ``max_similarity_entries``
  caps them: when the exact matrix would hold more, the support threshold is raised to the
  smallest value whose matrix fits (``support_threshold_used``, logged), which is the
  library's own ``threshold`` (co-occurrences below it dropped). Below the cap the model is the
  library's.
"""

from __future__ import annotations

import logging
import time
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from reclab.models import item_item
from reclab.models.base import (
    Recommender,
    TrainData,
    check_list_length,
    encoded_indices,
    explain_item_item,
    sparse_similarity_row,
    top_k,
)
from reclab.models.capabilities import Explains, FoldIn, ItemSimilarity
from reclab.models.item_item import (
    HISTOGRAM_BINS,
    cooccurrence_counts,
    cooccurrence_histograms,
    measure_values,
    top_k_item_item,
)
from reclab.models.params import check_number

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 24 * 60 * 60

SIMILARITIES = (
    "counts",
    "jaccard",
    "lift",
    "cosine",
    "inclusion_index",
    "mutual_information",
    "lexicographers_mutual_information",
)
# Microsoft Recommenders' spellings of the same measures.
_ALIASES = {
    "cooccurrence": "counts",
    "inclusion index": "inclusion_index",
    "mutual information": "mutual_information",
    "lexicographers mutual information": "lexicographers_mutual_information",
}


class SARRecommender(Recommender, FoldIn, ItemSimilarity, Explains):
    """Item-to-item SAR: time-decayed user affinity times a co-occurrence-based item similarity.

    Args:
        similarity: One of ``counts`` (plain co-occurrence), ``jaccard``, ``lift``, ``cosine``,
            ``inclusion_index``, ``mutual_information``, ``lexicographers_mutual_information``
            (Microsoft Recommenders' names, e.g. ``"cooccurrence"``, are accepted too).
        time_decay_half_life_days: Half-life of an interaction's affinity in days; 0 or None
            means no time decay.
        time_now: Epoch seconds that decay is measured from; None uses the latest train
            timestamp, like the library.
        support_threshold: Co-occurrence counts below this are set to zero (at least 1).
        use_weights: Use the interaction weight (rating) as the affinity value; otherwise 1.
        max_similarity_entries: Most similarities stored (8 bytes each; the default, 250M,
            is 2 GB). When the co-occurrence matrix at ``support_threshold`` has more
            non-zeros, the threshold is raised to the smallest value that fits (at most
            255); None never raises it.

    Raises:
        ValueError: On an unknown similarity, a negative half-life, a threshold below 1 or a
            cap below 1.
    """

    family = "sar"
    can_fold_in = True
    can_find_similar = True
    can_explain = True
    # Scores come from a dense copy of the similarity when it costs no more memory than the CSR
    # (8 bytes a non-zero, so from density 0.5) or little memory (any catalogue up to 4,096
    # items is at most 64 MB): a mostly dense co-occurrence (ML-100k: 69% non-zero) is scored
    # faster by dense rows than by scattering each stored entry.
    dense_scoring_min_density: ClassVar[float] = 0.5
    dense_scoring_max_small_bytes: ClassVar[int] = 64 << 20

    def __init__(
        self,
        similarity: str = "jaccard",
        time_decay_half_life_days: float | None = 30.0,
        time_now: float | None = None,
        support_threshold: int = 1,
        use_weights: bool = True,
        max_similarity_entries: int | None = 250_000_000,
    ) -> None:
        canonical = _ALIASES.get(similarity, similarity)
        if canonical not in SIMILARITIES:
            raise ValueError(
                f"similarity must be one of {', '.join(SIMILARITIES)}; got {similarity!r}"
            )
        check_number("time_decay_half_life_days", time_decay_half_life_days, 0, allow_none=True)
        check_number("time_now", time_now, allow_none=True)
        check_number(
            "support_threshold", support_threshold, 1, HISTOGRAM_BINS, high_open=True, integer=True
        )
        check_number(
            "max_similarity_entries", max_similarity_entries, 1, integer=True, allow_none=True
        )
        super().__init__(
            similarity=similarity,
            time_decay_half_life_days=time_decay_half_life_days,
            time_now=time_now,
            support_threshold=support_threshold,
            use_weights=use_weights,
            max_similarity_entries=max_similarity_entries,
        )
        self.similarity = canonical
        self.time_decay_half_life_days = time_decay_half_life_days or 0.0
        self.time_now = None if time_now is None else float(time_now)
        self.support_threshold = int(support_threshold)
        self.use_weights = bool(use_weights)
        self.max_similarity_entries = (
            None if max_similarity_entries is None else int(max_similarity_entries)
        )
        self.support_threshold_used: int | None = None  # after fit: the threshold applied
        self.affinity: sp.csr_matrix | None = None
        self.item_similarity: sp.csr_matrix | None = None
        self.item_frequencies: np.ndarray | None = None
        self.decay_reference_time: float | None = None
        self._cooccurs: sp.csr_matrix | None = None  # mutual_information only: C_ij > 0
        self._dense_similarity: np.ndarray | None = None  # scoring cache, never pickled
        self._tile_pointers: np.ndarray | None = None  # scoring cache, never pickled

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_dense_similarity"] = None
        state["_tile_pointers"] = None
        return state

    def _fit(self, train: TrainData) -> None:
        start = time.perf_counter()
        self.affinity = self._affinity(train)
        logger.info(
            "SAR affinity: %d users x %d items, nnz %d (%.2f s)",
            train.n_users,
            train.n_items,
            self.affinity.nnz,
            time.perf_counter() - start,
        )
        sim_start = time.perf_counter()
        self.item_similarity, self.item_frequencies = self._similarity(train)
        logger.info(
            "SAR %s similarity: %d items, nnz %d (%.2f s); fit %.2f s",
            self.similarity,
            train.n_items,
            self.item_similarity.nnz,
            time.perf_counter() - sim_start,
            time.perf_counter() - start,
        )
        self._dense_similarity = None
        self._tile_pointers = None
        self._scoring_similarity()  # built once here rather than in the first recommend

    def _affinity(self, train: TrainData) -> sp.csr_matrix:
        """Users x items affinity: summed (decayed) interaction values, float32 CSR."""
        values = (
            np.asarray(train.weight, dtype=np.float64)
            if self.use_weights
            else np.ones(len(train.user_idx), dtype=np.float64)
        )
        self.decay_reference_time = None
        if self.time_decay_half_life_days > 0 and train.ts is None:
            # Play counts without time are a normal input: the grid's decay cannot apply.
            logger.warning(
                "SAR: time_decay_half_life_days=%s but the data has no timestamps; "
                "affinity is computed without time decay",
                self.time_decay_half_life_days,
            )
        elif self.time_decay_half_life_days > 0:
            ts = np.asarray(train.ts, dtype=np.float64)
            if self.time_now is not None:
                reference = self.time_now
            else:
                reference = float(ts.max()) if len(ts) else 0.0
            self.decay_reference_time = reference
            half_life = self.time_decay_half_life_days * SECONDS_PER_DAY
            values = values * np.minimum(1.0, np.power(0.5, (reference - ts) / half_life))
        affinity = sp.csr_matrix(
            (values, (train.user_idx, train.item_idx)), shape=(train.n_users, train.n_items)
        )
        affinity.sum_duplicates()
        return affinity.astype(np.float32)

    def _similarity(self, train: TrainData) -> tuple[sp.csr_matrix, np.ndarray]:
        """Item x item similarity (float32 CSR) and the thresholded co-occurrence diagonal."""
        hits = sp.csr_matrix(
            (
                np.ones(len(train.user_idx), dtype=np.int32),
                (train.user_idx, train.item_idx),
            ),
            shape=(train.n_users, train.n_items),
        )
        hits.sum_duplicates()
        hits.data[:] = 1  # binary: a user counts once per item
        started = time.perf_counter()
        histograms = cooccurrence_histograms(hits)
        threshold = self._threshold_that_fits(histograms)
        counts = cooccurrence_counts(hits, threshold, histograms)
        del histograms
        logger.info(
            "SAR co-occurrence: %d items, %d pairs with >= %d users (%.1f s)",
            train.n_items,
            counts.nnz,
            threshold,
            time.perf_counter() - started,
        )
        diag = np.asarray(hits.sum(axis=0)).ravel().astype(np.float64)
        diag[diag < threshold] = 0.0
        del hits
        values = measure_values(counts, diag, self.similarity)
        similarity = sp.csr_matrix(
            (values, counts.indices, counts.indptr), shape=(train.n_items, train.n_items)
        )
        del counts
        self._cooccurs = None
        if self.similarity == "mutual_information":
            # explicit zeros are kept for this measure, so the structure is exactly C_ij > 0
            self._cooccurs = similarity.copy()
            self._cooccurs.data = np.ones_like(similarity.data)
        else:
            similarity.eliminate_zeros()
        self.support_threshold_used = threshold
        return similarity, diag.astype(np.float32)

    def _threshold_that_fits(self, histograms: np.ndarray) -> int:
        """The smallest support threshold >= ``support_threshold`` whose matrix fits the cap."""
        # entries[t]: co-occurrence entries with a count of at least t
        entries = np.cumsum(histograms.sum(axis=0, dtype=np.int64)[::-1])[::-1]
        threshold = self.support_threshold
        cap = self.max_similarity_entries
        if cap is None or entries[threshold] <= cap:
            return threshold
        fitting = np.flatnonzero(entries[threshold:] <= cap)
        raised = threshold + int(fitting[0]) if fitting.size else HISTOGRAM_BINS - 1
        logger.warning(
            "SAR: the co-occurrence matrix has %d entries at support threshold %d, more than "
            "max_similarity_entries=%d (%.1f GB); support threshold raised to %d (%d entries)",
            entries[threshold],
            threshold,
            cap,
            8 * cap / 1e9,
            raised,
            entries[raised],
        )
        return raised

    def _scoring_similarity(self) -> sp.csr_matrix | np.ndarray:
        """The similarity scores are computed with: a cached dense copy when it is cheap."""
        if self._dense_similarity is not None:
            return self._dense_similarity
        similarity = self.item_similarity
        n_items = similarity.shape[0]
        dense_bytes = 4 * n_items * n_items
        density = similarity.nnz / max(1, n_items * n_items)
        if (
            density >= self.dense_scoring_min_density
            or dense_bytes <= self.dense_scoring_max_small_bytes
        ):
            self._dense_similarity = similarity.toarray()
            return self._dense_similarity
        return similarity

    def recommend(
        self, user_idx: np.ndarray, k: int, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items for each user by ``affinity @ similarity``; see :class:`Recommender`.

        Scored by the compiled kernel (no dense batch x items matrix); the lists equal the
        dense scores' top k.
        """
        if self._seen is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        check_list_length(k)
        user_idx = encoded_indices(user_idx, self.n_users, "user_idx")
        mutual_information = self._cooccurs is not None
        # the mutual-information rule reads the sparse structure (C_ij > 0)
        similarity = self.item_similarity if mutual_information else self._scoring_similarity()
        pointers = None
        if sp.issparse(similarity) and similarity.nnz * 8 >= item_item.TILED_MIN_BYTES:
            if self._tile_pointers is None:  # kept for the next batches
                self._tile_pointers = item_item.tile_pointers(similarity)
            pointers = self._tile_pointers
        return top_k_item_item(
            self.affinity[user_idx],
            similarity,
            self._seen[user_idx] if exclude_seen else None,
            k,
            mutual_information=mutual_information,
            pointers=pointers,
        )

    def _scores(self, user_idx: np.ndarray) -> np.ndarray:
        affinity = self.affinity[user_idx]
        scores = affinity @ self._scoring_similarity()
        scores = (scores.toarray() if sp.issparse(scores) else scores).astype(
            np.float32, copy=False
        )
        if self._cooccurs is not None:
            # the library's dense MI is -inf where C_kj = 0, and one -inf term makes the sum -inf
            pattern = affinity.copy()
            pattern.data = np.ones_like(pattern.data)
            support = (pattern @ self._cooccurs).toarray()
            scores[support < np.diff(pattern.indptr)[:, None]] = -np.inf
        return scores

    def user_history(self, user_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """A known user's affinity row: the (decayed) weights their scores are built from."""
        row = self.affinity[int(user_idx)]
        return row.indices.astype(np.int64), row.data.astype(np.float32)

    def fold_in_scores(self, item_idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Scores ``a @ S`` for a new user whose affinity row ``a`` is built from their items.

        The new interactions count as happening now (no decay); ``a_i`` is the given weight when
        ``use_weights`` is true (the rating, as in train), else 1.

        Args:
            item_idx: Encoded items of the new user's history (distinct).
            weights: Optional rating per item; None means 1.

        Returns:
            float32 array (n_items,).
        """
        if self.item_similarity is None:
            raise ValueError("SARRecommender is not fitted: call fit() first")
        item_idx = np.asarray(item_idx, dtype=np.int64)
        values = (
            np.asarray(weights, dtype=np.float32)
            if weights is not None and self.use_weights
            else np.ones(len(item_idx), dtype=np.float32)
        )
        affinity = sp.csr_matrix(
            (values, (np.zeros(len(item_idx), dtype=np.int64), item_idx)),
            shape=(1, self.n_items),
        )
        scores = (affinity @ self.item_similarity).toarray().ravel().astype(np.float32)
        if self._cooccurs is not None:
            # the same -inf rule as _scores: an item must co-occur with every history item
            support = np.asarray(self._cooccurs[item_idx].sum(axis=0)).ravel()
            scores[support < len(item_idx)] = -np.inf
        return scores

    def item_similarity_scores(self, item_idx: int) -> np.ndarray:
        """One row of the similarity matrix, -inf where the items never co-occur."""
        if self.item_similarity is None:
            raise ValueError("SARRecommender is not fitted: call fit() first")
        return sparse_similarity_row(self.item_similarity, item_idx)

    def explain(
        self,
        history_idx: np.ndarray,
        history_weights: np.ndarray,
        item_idx: np.ndarray,
        k: int = 3,
    ) -> list[list[tuple[int, float]]]:
        """History items with the largest ``affinity * similarity`` terms of each item's score.

        Args:
            history_idx: Encoded history items.
            history_weights: Their affinities (from :meth:`user_history` or the fold-in).
            item_idx: Encoded recommended items.
            k: Contributors per recommended item.

        Returns:
            Per item, up to k ``(item_idx, contribution)`` pairs, largest first.
        """
        return explain_item_item(self.item_similarity, history_idx, history_weights, item_idx, k)

    def similar_items(self, item_idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k items most similar to each given item, the item itself left out.

        Only items that co-occur with the given item (a stored similarity) are candidates;
        rows with fewer than k of them are padded with item -1 and score -inf.

        Args:
            item_idx: Encoded items, shape (n,).
            k: Number of similar items per item.

        Returns:
            (item_idx int64 (n, k), scores float32 (n, k)), most similar first.

        Raises:
            ValueError: If the model is not fitted, k < 1, or an item is out of range.
        """
        if self.item_similarity is None:
            raise ValueError("SARRecommender is not fitted: call fit() first")
        check_list_length(k)
        item_idx = encoded_indices(item_idx, self.n_items, "item_idx")
        items = np.full((len(item_idx), k), -1, dtype=np.int64)
        scores = np.full((len(item_idx), k), -np.inf, dtype=np.float32)
        for start in range(0, len(item_idx), self.batch_size):
            batch = item_idx[start : start + self.batch_size]
            rows = self.item_similarity[batch].tocoo()
            dense = np.full((len(batch), self.n_items), -np.inf, dtype=np.float32)
            dense[rows.row, rows.col] = rows.data
            dense[np.arange(len(batch)), batch] = -np.inf
            top_items, top_scores = top_k(dense, k)
            items[start : start + len(batch)] = top_items
            scores[start : start + len(batch)] = top_scores
        return items, scores
