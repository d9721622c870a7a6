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
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from reclab.models.base import TrainData, ValidationWindow
from reclab.models.item_item import (
    HISTOGRAM_BINS,
    MEASURES,
    ItemItemRecommender,
    cooccurrence_counts,
    cooccurrence_histograms,
    measure_values,
)
from reclab.models.params import check_field, set_field

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 24 * 60 * 60

SIMILARITIES = MEASURES
# Microsoft Recommenders' spellings of the same measures.
_ALIASES = {
    "cooccurrence": "counts",
    "inclusion index": "inclusion_index",
    "mutual information": "mutual_information",
    "lexicographers mutual information": "lexicographers_mutual_information",
}


@dataclass(frozen=True)
class SARParams:
    """Hyper-parameters of :class:`SARRecommender`.

    Attributes:
        similarity: One of ``counts`` (plain co-occurrence), ``jaccard``, ``lift``, ``cosine``,
            ``inclusion_index``, ``mutual_information``, ``lexicographers_mutual_information``
            (Microsoft Recommenders' names, e.g. ``"cooccurrence"``, are accepted and stored
            as ours).
        time_decay_half_life_days: Half-life of an interaction's affinity in days; 0 or None
            means no time decay (stored as 0).
        time_now: Epoch seconds that decay is measured from; None uses the latest train
            timestamp, like the library.
        support_threshold: Co-occurrence counts below this are set to zero (at least 1).
        use_weights: Use the interaction weight (rating) as the affinity value; otherwise 1.
        max_similarity_entries: Most similarities stored (8 bytes each; the default, 250M,
            is 2 GB). When the co-occurrence matrix at ``support_threshold`` has more
            non-zeros, the threshold is raised to the smallest value that fits (at most
            255); None never raises it.
    """

    similarity: str = "jaccard"
    time_decay_half_life_days: float | None = 30.0
    time_now: float | None = None
    support_threshold: int = 1
    use_weights: bool = True
    max_similarity_entries: int | None = 250_000_000

    def __post_init__(self) -> None:
        canonical = _ALIASES.get(self.similarity, self.similarity)
        if canonical not in SIMILARITIES:
            raise ValueError(
                f"similarity must be one of {', '.join(SIMILARITIES)}; got {self.similarity!r}"
            )
        set_field(self, "similarity", canonical)
        check_field(self, "time_decay_half_life_days", 0, allow_none=True)
        set_field(self, "time_decay_half_life_days", self.time_decay_half_life_days or 0.0)
        check_field(self, "time_now", allow_none=True)
        check_field(self, "support_threshold", 1, HISTOGRAM_BINS, high_open=True, integer=True)
        set_field(self, "use_weights", bool(self.use_weights))
        check_field(self, "max_similarity_entries", 1, integer=True, allow_none=True)


class SARRecommender(ItemItemRecommender):
    """Item-to-item SAR: time-decayed user affinity times a co-occurrence-based item similarity.

    Hyper-parameters: :class:`SARParams`; an unknown similarity, a negative half-life, a
    threshold below 1 or a cap below 1 raise a ``ValueError``.
    """

    family = "sar"
    Params = SARParams

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.support_threshold_used: int | None = None  # after fit: the threshold applied
        self.affinity: sp.csr_matrix | None = None
        self.item_frequencies: np.ndarray | None = None
        self.decay_reference_time: float | None = None

    def _fit(self, train: TrainData, validation: ValidationWindow | None) -> None:
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
            self.hparams.similarity,
            train.n_items,
            self.item_similarity.nnz,
            time.perf_counter() - sim_start,
            time.perf_counter() - start,
        )

    def _affinity(self, train: TrainData) -> sp.csr_matrix:
        """Users x items affinity: summed (decayed) interaction values, float32 CSR."""
        values = (
            np.asarray(train.weight, dtype=np.float64)
            if self.hparams.use_weights
            else np.ones(len(train.user_idx), dtype=np.float64)
        )
        self.decay_reference_time = None
        if self.hparams.time_decay_half_life_days > 0 and train.ts is None:
            # Play counts without time are a normal input: the grid's decay cannot apply.
            logger.warning(
                "SAR: time_decay_half_life_days=%s but the data has no timestamps; "
                "affinity is computed without time decay",
                self.hparams.time_decay_half_life_days,
            )
        elif self.hparams.time_decay_half_life_days > 0:
            ts = np.asarray(train.ts, dtype=np.float64)
            if self.hparams.time_now is not None:
                reference = self.hparams.time_now
            else:
                reference = float(ts.max()) if len(ts) else 0.0
            self.decay_reference_time = reference
            half_life = self.hparams.time_decay_half_life_days * SECONDS_PER_DAY
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
        values = measure_values(counts, diag, self.hparams.similarity)
        similarity = sp.csr_matrix(
            (values, counts.indices, counts.indptr), shape=(train.n_items, train.n_items)
        )
        del counts
        self._cooccurs = None
        if self.hparams.similarity == "mutual_information":
            # explicit zeros are kept for this measure, so the structure is exactly C_ij > 0
            self._cooccurs = similarity.copy()
            self._cooccurs.data = np.ones_like(similarity.data)
        else:
            similarity.eliminate_zeros()
        self.support_threshold_used = threshold
        if threshold > self.hparams.support_threshold:
            # The leaderboard states what the cap changed, as it does for the deep families' caps.
            cap = self.hparams.max_similarity_entries
            self.train_sample = (
                f"similarity: support threshold raised from {self.hparams.support_threshold} "
                f"to {threshold} to fit max_similarity_entries={cap:,}"
            )
        return similarity, diag.astype(np.float32)

    def _threshold_that_fits(self, histograms: np.ndarray) -> int:
        """The smallest support threshold >= ``support_threshold`` whose matrix fits the cap."""
        # entries[t]: co-occurrence entries with a count of at least t
        entries = np.cumsum(histograms.sum(axis=0, dtype=np.int64)[::-1])[::-1]
        threshold = self.hparams.support_threshold
        cap = self.hparams.max_similarity_entries
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

    def _user_rows(self, user_idx: np.ndarray) -> sp.csr_matrix:
        return self.affinity[user_idx]

    def _scores_weights(self) -> bool:
        return self.hparams.use_weights
