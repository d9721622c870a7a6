"""Compiled kernels of the item-to-item families (SAR, item KNN): scoring with top-k, co-occurrence.

Why this module exists: both families score a user as ``a_u @ S`` (the user's row of weights
times an item x item similarity). SciPy's sparse @ sparse product builds a sparse result per
batch that then has to be densified and ranked: SAR recommend for 270k users over 50k items
took 416 s that way. Here each user's scores are accumulated into one dense row buffer per
thread, the user's train items are masked, and the top ``k`` are selected in the same pass over
the row, so no ``batch x n_items`` matrix is ever built. The co-occurrence counts of SAR's fit
(``B^T B`` on the binary user x item matrix) are computed the same way, one item row at a time,
in two passes: the first counts the entries per row (so the result is allocated once, at its
exact size), the second writes them.

A large similarity (``TILED_MIN_BYTES`` or more) does not fit the caches, and the per-user loop
then streams every row a user needs from memory once per user: at MovieLens-25M shape (219M
similarities, 1.75 GB) it managed 16 users a second on this machine. Above that size users are
scored in blocks of ``USER_BLOCK`` and the item columns in tiles of ``TILE`` (one float32 row of
a tile is 16 KB): each similarity row segment is read once per block and added into the rows of
the block's users that hold the item, in the same item order, so the scores are identical. On a
10M-row MovieLens-shaped catalogue (1.4 GB of similarities) that took 1.2 ns a multiply-add
against 2.1 ns per user; on the 0.8 GB one of the 50k-item benchmark the per-user loop is the
faster (1.6 vs 2.2 ns).

Everything runs in Numba, in parallel over users (or items) with one buffer per thread; results
do not depend on the number of threads (each row is computed by one thread, in a fixed order).
Column indices are handed to the kernels as unsigned views, which spares Numba's negative-index
check in the scatter loops (a third of their time).

Ranking rule (the same as :func:`reclab.models.base.top_k`): higher score first, ties to the
smaller item index; ``-inf`` and NaN scores are never listed, and rows with fewer than ``k``
listable items are padded with item ``-1`` and score ``-inf``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import ClassVar

import numba
import numpy as np
import scipy.sparse as sp

from reclab.models.base import Recommender, checked_item
from reclab.models.capabilities import Explains, FoldIn, ItemSimilarity

# Co-occurrence counts are histogrammed per item row up to this value (larger counts share the
# last bin), so a support threshold up to HISTOGRAM_BINS - 1 can be chosen from the histograms.
HISTOGRAM_BINS = 256
# Similarities of at least this many bytes (8 a stored entry) are scored by user blocks and
# column tiles; the measured crossover lies between 0.8 GB (per user faster) and 1.4 GB.
TILED_MIN_BYTES = 1 << 30
TILE = 4096  # item columns per tile: a float32 tile row is 16 KB
USER_BLOCK = 256  # users scored together; their tile rows are 4 MB


@numba.njit(cache=True, inline="always")
def _insert(best_items, best_scores, filled, k, item, score):
    """Insert (item, score) into a row's sorted top-k (best first); returns the new fill.

    Items arrive in increasing index order, so an equal score ranks after those already held.
    """
    if filled == k:
        if not score > best_scores[k - 1]:
            return filled
        position = k - 1
    else:
        position = filled
        filled += 1
    while position > 0 and score > best_scores[position - 1]:
        best_scores[position] = best_scores[position - 1]
        best_items[position] = best_items[position - 1]
        position -= 1
    best_scores[position] = score
    best_items[position] = item
    return filled


@numba.njit(cache=True, inline="always")
def _select_and_reset(acc, support, min_support, k, items_out, scores_out):
    """Top-k of a dense score row into the output row; zeroes the row (and support) behind it.

    Entries with ``support < min_support`` (SAR's mutual information rule) score ``-inf``.
    """
    filled = 0
    for j in range(acc.shape[0]):
        score = acc[j]
        acc[j] = 0.0
        if min_support > 0:
            if support[j] < min_support:
                score = -np.inf
            support[j] = 0
        if score > -np.inf:  # False for -inf and NaN
            filled = _insert(items_out, scores_out, filled, k, j, score)
    for position in range(filled, k):
        items_out[position] = -1
        scores_out[position] = -np.inf


@numba.njit(parallel=True, cache=True)
def _top_k_sparse(
    user_indptr,
    user_indices,
    user_data,
    sim_indptr,
    sim_indices,
    sim_data,
    seen_indptr,
    seen_indices,
    n_items,
    k,
    mutual_information,
    n_chunks,
    items_out,
    scores_out,
):
    n_users = user_indptr.shape[0] - 1
    for chunk in numba.prange(n_chunks):
        acc = np.zeros(n_items, dtype=np.float32)
        support = np.zeros(n_items if mutual_information else 1, dtype=np.int32)
        for u in range(chunk, n_users, n_chunks):
            for p in range(user_indptr[u], user_indptr[u + 1]):
                i = user_indices[p]
                weight = user_data[p]
                for q in range(sim_indptr[i], sim_indptr[i + 1]):
                    acc[sim_indices[q]] += weight * sim_data[q]
                if mutual_information:
                    for q in range(sim_indptr[i], sim_indptr[i + 1]):
                        support[sim_indices[q]] += 1
            for p in range(seen_indptr[u], seen_indptr[u + 1]):
                acc[seen_indices[p]] = -np.inf
            min_support = user_indptr[u + 1] - user_indptr[u] if mutual_information else 0
            _select_and_reset(acc, support, min_support, k, items_out[u], scores_out[u])


@numba.njit(cache=True)
def _tile_pointers(sim_indptr, sim_indices, n_items, tile):
    n_tiles = (n_items + tile - 1) // tile
    pointers = np.empty((sim_indptr.shape[0] - 1, n_tiles + 1), dtype=np.int64)
    for i in range(sim_indptr.shape[0] - 1):
        q = sim_indptr[i]
        end = sim_indptr[i + 1]
        pointers[i, 0] = q
        for t in range(1, n_tiles + 1):
            bound = t * tile
            while q < end and sim_indices[q] < bound:
                q += 1
            pointers[i, t] = q
    return pointers


def tile_pointers(similarity: sp.csr_matrix) -> np.ndarray:
    """Where each row of a similarity enters each column tile, for the tiled kernel.

    Args:
        similarity: Items x items CSR with sorted indices.

    Returns:
        int64 array (n_items, n_tiles + 1): row i's entries in tile t are
        ``pointers[i, t] .. pointers[i, t + 1]`` of ``indices`` / ``data``.
    """
    if not similarity.has_sorted_indices:
        raise ValueError("the similarity's column indices must be sorted within each row")
    return _tile_pointers(
        similarity.indptr, _unsigned(similarity.indices), similarity.shape[1], TILE
    )


@numba.njit(parallel=True, cache=True)
def _top_k_tiled(
    user_indptr,
    user_indices,
    user_data,
    tile_ptr,
    sim_indices,
    sim_data,
    seen_indptr,
    seen_indices,
    n_items,
    k,
    mutual_information,
    tile,
    block,
    items_out,
    scores_out,
):
    n_users = user_indptr.shape[0] - 1
    n_tiles = tile_ptr.shape[1] - 1
    n_blocks = (n_users + block - 1) // block
    for b in numba.prange(n_blocks):
        u0 = b * block
        u1 = min(u0 + block, n_users)
        size = u1 - u0
        lo = user_indptr[u0]
        m = user_indptr[u1] - lo
        # the block's (user, item) pairs, by item: a row segment serves all its users in turn
        pair_item = np.empty(m, dtype=np.int64)
        pair_user = np.empty(m, dtype=np.int64)
        for u in range(u0, u1):
            for p in range(user_indptr[u], user_indptr[u + 1]):
                pair_item[p - lo] = user_indices[p]
                pair_user[p - lo] = u - u0
        order = np.argsort(pair_item, kind="mergesort")
        acc = np.zeros((size, tile), dtype=np.float32)
        support = np.zeros((size if mutual_information else 1, tile), dtype=np.int32)
        filled = np.zeros(size, dtype=np.int64)
        seen_at = np.empty(size, dtype=np.int64)
        for local in range(size):
            seen_at[local] = seen_indptr[u0 + local]
        for t in range(n_tiles):
            base = t * tile
            width = min(tile, n_items - base)
            for o in range(m):
                p = order[o]
                i = pair_item[p]
                local = pair_user[p]
                weight = user_data[lo + p]
                row = acc[local]
                for q in range(tile_ptr[i, t], tile_ptr[i, t + 1]):
                    row[sim_indices[q] - base] += weight * sim_data[q]
                if mutual_information:
                    counts = support[local]
                    for q in range(tile_ptr[i, t], tile_ptr[i, t + 1]):
                        counts[sim_indices[q] - base] += 1
            for local in range(size):
                u = u0 + local
                row = acc[local]
                position = seen_at[local]
                while position < seen_indptr[u + 1] and seen_indices[position] < base + width:
                    row[seen_indices[position] - base] = -np.inf
                    position += 1
                seen_at[local] = position
                min_support = user_indptr[u + 1] - user_indptr[u] if mutual_information else 0
                count = filled[local]
                for jj in range(width):
                    score = row[jj]
                    row[jj] = 0.0
                    if min_support > 0:
                        if support[local, jj] < min_support:
                            score = -np.inf
                        support[local, jj] = 0
                    if score > -np.inf:  # False for -inf and NaN
                        count = _insert(items_out[u], scores_out[u], count, k, base + jj, score)
                filled[local] = count
        for local in range(size):
            for position in range(filled[local], k):
                items_out[u0 + local, position] = -1
                scores_out[u0 + local, position] = -np.inf


@numba.njit(parallel=True, cache=True)
def _top_k_dense(
    user_indptr,
    user_indices,
    user_data,
    similarity,
    seen_indptr,
    seen_indices,
    k,
    n_chunks,
    items_out,
    scores_out,
):
    n_users = user_indptr.shape[0] - 1
    n_items = similarity.shape[1]
    for chunk in numba.prange(n_chunks):
        acc = np.zeros(n_items, dtype=np.float32)
        support = np.zeros(1, dtype=np.int32)
        for u in range(chunk, n_users, n_chunks):
            for p in range(user_indptr[u], user_indptr[u + 1]):
                row = similarity[user_indices[p]]
                weight = user_data[p]
                for j in range(n_items):
                    acc[j] += weight * row[j]
            for p in range(seen_indptr[u], seen_indptr[u + 1]):
                acc[seen_indices[p]] = -np.inf
            _select_and_reset(acc, support, 0, k, items_out[u], scores_out[u])


def top_k_item_item(
    user_rows: sp.csr_matrix,
    similarity: sp.csr_matrix | np.ndarray,
    seen_rows: sp.csr_matrix | None,
    k: int,
    mutual_information: bool = False,
    pointers: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items of ``user_rows @ similarity`` per row, seen items left out.

    The scores equal the dense product computed in float32 in the order SciPy uses (each
    user's items in index order, each similarity row in stored order), so the lists equal
    ``top_k((user_rows @ similarity).toarray())`` with the seen items set to ``-inf``.

    Args:
        user_rows: Users x items CSR of float32 weights (SAR affinity, binary train rows).
        similarity: Items x items similarity: float32 CSR, or a dense float32 array.
        seen_rows: Users x items CSR whose stored items are masked (the users' train items),
            or None to mask nothing.
        k: Items per user (>= 1).
        mutual_information: SAR's mutual-information rule: an item scores ``-inf`` unless it
            co-occurs (a stored similarity, zero included) with every item of the user's row.
            Sparse similarity only.
        pointers: :func:`tile_pointers` of a sparse ``similarity`` of ``TILED_MIN_BYTES`` or
            more (callers scoring several batches keep them); None computes them when needed.

    Returns:
        (item_idx int64 (n, k), scores float32 (n, k)), best first; -1 / -inf padding.
    """
    user_rows = _canonical(user_rows, np.float32)
    n_users, n_items = user_rows.shape
    if seen_rows is None:
        seen_indptr = np.zeros(n_users + 1, dtype=np.int64)
        seen_indices = np.zeros(0, dtype=np.uint32)
    else:
        seen_rows = sp.csr_matrix(seen_rows)
        seen_indptr, seen_indices = seen_rows.indptr, _unsigned(seen_rows.indices)
    items = np.empty((n_users, k), dtype=np.int64)
    scores = np.empty((n_users, k), dtype=np.float32)
    if n_users == 0:
        return items, scores
    users = (user_rows.indptr, _unsigned(user_rows.indices), user_rows.data)
    seen = (seen_indptr, seen_indices)
    if isinstance(similarity, np.ndarray):
        if mutual_information:
            raise ValueError("the mutual-information rule needs the sparse similarity")
        dense = np.ascontiguousarray(similarity, dtype=np.float32)
        _top_k_dense(*users, dense, *seen, k, _chunks(n_users), items, scores)
        return items, scores
    tiled = similarity.nnz * 8 >= TILED_MIN_BYTES
    if tiled and pointers is None:
        pointers = tile_pointers(similarity)
    similarity = _canonical(similarity, np.float32, sort=False)
    sim = (_unsigned(similarity.indices), similarity.data)
    shared = (*seen, n_items, k, mutual_information)
    if tiled:
        _top_k_tiled(*users, pointers, *sim, *shared, TILE, USER_BLOCK, items, scores)
    else:
        _top_k_sparse(*users, similarity.indptr, *sim, *shared, _chunks(n_users), items, scores)
    return items, scores


def _unsigned(indices: np.ndarray) -> np.ndarray:
    """A zero-copy unsigned view of non-negative int32 / int64 indices."""
    return indices.view(np.uint32 if indices.dtype.itemsize == 4 else np.uint64)


def _chunks(n_rows: int) -> int:
    """Rows are dealt to this many interleaved chunks, a few per thread (balances the load)."""
    return max(1, min(n_rows, numba.get_num_threads() * 4))


def _canonical(matrix: sp.csr_matrix, dtype: type, sort: bool = True) -> sp.csr_matrix:
    """CSR of ``dtype`` (no copy when it already is one), indices sorted when asked."""
    matrix = sp.csr_matrix(matrix, dtype=dtype, copy=False)
    if sort and not matrix.has_sorted_indices:
        matrix = matrix.sorted_indices()
    return matrix


@numba.njit(parallel=True, cache=True)
def _cooccurrence_histograms(
    item_indptr, item_users, user_indptr, user_items, n_items, bins, n_chunks
):
    """Per item row i: how many items j have co-occurrence count c with i, c capped at bins-1."""
    histograms = np.zeros((n_items, bins), dtype=np.int32)
    for chunk in numba.prange(n_chunks):
        counts = np.zeros(n_items, dtype=np.int32)
        for i in range(chunk, n_items, n_chunks):
            for p in range(item_indptr[i], item_indptr[i + 1]):
                v = item_users[p]
                for q in range(user_indptr[v], user_indptr[v + 1]):
                    counts[user_items[q]] += 1
            for j in range(n_items):
                c = counts[j]
                if c > 0:
                    histograms[i, min(c, bins - 1)] += 1
                    counts[j] = 0
    return histograms


@numba.njit(parallel=True, cache=True)
def _cooccurrence_fill(
    item_indptr, item_users, user_indptr, user_items, n_items, threshold, out_indptr, n_chunks
):
    """Co-occurrence counts >= threshold of every item row, written into a CSR's arrays."""
    out_indices = np.empty(out_indptr[n_items], dtype=np.int32)
    out_counts = np.empty(out_indptr[n_items], dtype=np.int32)
    for chunk in numba.prange(n_chunks):
        counts = np.zeros(n_items, dtype=np.int32)
        for i in range(chunk, n_items, n_chunks):
            for p in range(item_indptr[i], item_indptr[i + 1]):
                v = item_users[p]
                for q in range(user_indptr[v], user_indptr[v + 1]):
                    counts[user_items[q]] += 1
            position = out_indptr[i]
            for j in range(n_items):
                c = counts[j]
                if c > 0:
                    if c >= threshold:
                        out_indices[position] = j
                        out_counts[position] = c
                        position += 1
                    counts[j] = 0
    return out_indices, out_counts


def cooccurrence_histograms(binary: sp.csr_matrix) -> np.ndarray:
    """Per item, how many items it co-occurs with how often, from the binary user x item matrix.

    Args:
        binary: Users x items CSR with one stored entry per (user, item) pair.

    Returns:
        int32 array (n_items, ``HISTOGRAM_BINS``): entry ``[i, c]`` counts the items ``j``
        (``i`` itself included) shared by exactly ``c`` users with ``i``; the last bin counts
        ``HISTOGRAM_BINS - 1`` users or more.
    """
    item_users = binary.T.tocsr()
    return _cooccurrence_histograms(
        item_users.indptr,
        _unsigned(item_users.indices),
        binary.indptr,
        _unsigned(binary.indices),
        binary.shape[1],
        HISTOGRAM_BINS,
        _chunks(binary.shape[1]),
    )


def cooccurrence_counts(
    binary: sp.csr_matrix, threshold: int, histograms: np.ndarray
) -> sp.csr_matrix:
    """The co-occurrence matrix ``B^T B`` with the counts below ``threshold`` left out.

    Args:
        binary: Users x items CSR with one stored entry per (user, item) pair.
        threshold: Smallest count kept (>= 1, < ``HISTOGRAM_BINS``).
        histograms: :func:`cooccurrence_histograms` of ``binary`` (sizes the result).

    Returns:
        Items x items int32 CSR with sorted indices; memory is exactly its stored entries.
    """
    n_items = binary.shape[1]
    row_nnz = histograms[:, threshold:].sum(axis=1, dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(row_nnz)]).astype(np.int64)
    item_users = binary.T.tocsr()
    indices, counts = _cooccurrence_fill(
        item_users.indptr,
        _unsigned(item_users.indices),
        binary.indptr,
        _unsigned(binary.indices),
        n_items,
        threshold,
        indptr,
        _chunks(n_items),
    )
    return sp.csr_matrix((counts, indices, indptr), shape=(n_items, n_items))


# The co-occurrence measures SAR offers, as the kernel's codes (formulas in reclab.models.sar).
MEASURES = (
    "counts",
    "jaccard",
    "lift",
    "cosine",
    "inclusion_index",
    "mutual_information",
    "lexicographers_mutual_information",
)


@numba.njit(parallel=True, cache=True)
def _measure_values(indptr, indices, counts, diag, measure, n_items, n_chunks):
    values = np.empty(counts.shape[0], dtype=np.float32)
    n_rows = indptr.shape[0] - 1
    for chunk in numba.prange(n_chunks):
        for i in range(chunk, n_rows, n_chunks):
            d_i = diag[i]
            for p in range(indptr[i], indptr[i + 1]):
                c = np.float64(counts[p])
                d_j = diag[indices[p]]
                if measure == 0:
                    value = c
                elif measure == 1:
                    value = c / (d_i + d_j - c)
                elif measure == 2:
                    value = c / (d_i * d_j)
                elif measure == 3:
                    value = c / math.sqrt(d_i * d_j)
                elif measure == 4:
                    value = c / min(d_i, d_j)
                elif measure == 5:
                    value = math.log2(n_items * c / (d_i * d_j))
                else:
                    value = c * math.log2(n_items * c / (d_i * d_j))
                values[p] = np.float32(value)
    return values


def measure_values(counts: sp.csr_matrix, diag: np.ndarray, measure: str) -> np.ndarray:
    """A co-occurrence measure of every stored count ``C_ij``, from the diagonal ``d``.

    ``counts`` C_ij; ``jaccard`` C_ij / (d_i + d_j - C_ij); ``lift`` C_ij / (d_i d_j);
    ``cosine`` C_ij / sqrt(d_i d_j); ``inclusion_index`` C_ij / min(d_i, d_j);
    ``mutual_information`` log2(n_items * lift); ``lexicographers_mutual_information``
    C_ij * log2(n_items * lift). Computed in float64 per entry, stored as float32, without
    the entry-sized temporaries a NumPy expression needs.

    Args:
        counts: Items x items CSR of co-occurrence counts.
        diag: float64 (n_items,) thresholded diagonal (users per item, 0 below the threshold).
        measure: One of ``MEASURES``.

    Returns:
        float32 values aligned with ``counts.data``.
    """
    n_items = counts.shape[0]
    return _measure_values(
        counts.indptr,
        _unsigned(counts.indices),
        counts.data,
        np.asarray(diag, dtype=np.float64),
        MEASURES.index(measure),
        n_items,
        _chunks(n_items),
    )


class ItemItemRecommender(Recommender, FoldIn, ItemSimilarity, Explains):
    """A family that scores a user as ``a_u @ S``: a row of user weights times an item x item
    similarity ``S`` (SAR, item KNN).

    Subclasses fit ``item_similarity`` (float32 CSR) and say which user rows are scored
    (:meth:`_user_rows`: SAR's decayed affinity, item KNN's binary train rows). ``recommend``
    runs the compiled kernel (:func:`top_k_item_item`: no dense users x items batch), on a
    dense copy of ``S`` when that is cheap; ``scores`` (serving) builds the dense rows. The
    scoring caches are built once, at the end of ``fit`` and when a model is unpickled, never
    lazily by a serving thread.

    With ``_cooccurs`` set (SAR's ``mutual_information``), an item scores ``-inf`` for a user
    unless it co-occurs with every item of the user's row (the library's ``log2(0) = -inf``).
    """

    # Scores come from a dense copy of the similarity when it costs no more memory than the CSR
    # (8 bytes a non-zero, so from density 0.5) or little memory (any catalogue up to 4,096
    # items is at most 64 MB): a mostly dense co-occurrence (ML-100k: 69% non-zero) is scored
    # faster by dense rows than by scattering each stored entry.
    dense_scoring_min_density: ClassVar[float] = 0.5
    dense_scoring_max_small_bytes: ClassVar[int] = 64 << 20
    # The user side of a fold-in and an explanation counts each history item as 1 (item KNN).
    binary_user_side: ClassVar[bool] = False

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.item_similarity: sp.csr_matrix | None = None
        self._cooccurs: sp.csr_matrix | None = None  # mutual_information only: C_ij > 0
        self._dense_similarity: np.ndarray | None = None  # scoring cache, never pickled
        self._tile_pointers: np.ndarray | None = None  # scoring cache, never pickled

    @abstractmethod
    def _user_rows(self, user_idx: np.ndarray) -> sp.csr_matrix:
        """The float32 user x item rows scored against the similarity."""

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_dense_similarity"] = None
        state["_tile_pointers"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._build_scoring_caches()  # at load, so no serving thread builds them lazily

    def fit(self, train, validation=None) -> ItemItemRecommender:
        """Fit (see :meth:`Recommender.fit`), then build the scoring caches once."""
        super().fit(train, validation)
        self._build_scoring_caches()
        return self

    def _build_scoring_caches(self) -> None:
        """The dense copy of the similarity when it is cheap, else the tile pointers of a
        similarity large enough for the tiled kernel."""
        self._dense_similarity = self._tile_pointers = None
        similarity = self.item_similarity
        if similarity is None:
            return
        n_items = similarity.shape[0]
        density = similarity.nnz / max(1, n_items * n_items)
        if self._cooccurs is None and (
            density >= self.dense_scoring_min_density
            or 4 * n_items * n_items <= self.dense_scoring_max_small_bytes
        ):
            self._dense_similarity = similarity.toarray()
        elif similarity.nnz * 8 >= TILED_MIN_BYTES:
            self._tile_pointers = tile_pointers(similarity)

    def _scoring_similarity(self) -> sp.csr_matrix | np.ndarray:
        """The similarity scores are computed with: the dense copy when there is one."""
        if self._dense_similarity is not None:
            return self._dense_similarity
        return self.item_similarity

    def recommend(
        self, user_idx: np.ndarray, k: int, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items for each user by ``user rows @ similarity``; see :class:`Recommender`.

        Scored by the compiled kernel (no dense batch x items matrix); the lists equal the
        dense scores' top k.
        """
        user_idx = self._checked_users(user_idx, k)
        return top_k_item_item(
            self._user_rows(user_idx),
            self._scoring_similarity(),
            self._seen[user_idx] if exclude_seen else None,
            k,
            mutual_information=self._cooccurs is not None,
            pointers=self._tile_pointers,  # built at fit / load for a large similarity
        )

    def _scores_into(self, user_idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        rows = self._user_rows(user_idx)
        scores = rows @ self._scoring_similarity()
        out[:] = scores.toarray() if sp.issparse(scores) else scores
        self._mutual_information_rule(rows, out)
        return out

    def _mutual_information_rule(self, rows: sp.csr_matrix, scores: np.ndarray) -> None:
        """SAR's mutual information: -inf unless the item co-occurs with every item of a row
        (the library's dense MI is -inf where C_kj = 0, and one -inf term makes the sum -inf)."""
        if self._cooccurs is None:
            return
        pattern = rows.copy()
        pattern.data = np.ones_like(pattern.data)
        support = (pattern @ self._cooccurs).toarray()
        scores[support < np.diff(pattern.indptr)[:, None]] = -np.inf

    def user_history(self, user_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """A known user's scored row: the items and the weights their scores are built from."""
        row = self._user_rows(np.array([int(user_idx)]))
        return row.indices.astype(np.int64), row.data.astype(np.float32)

    def fold_in_scores(self, item_idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Scores ``a @ S`` of a new user whose row ``a`` is built from their items.

        The new interactions count as happening now (no decay); ``a_i`` is the given weight
        where the family scores weights (SAR with ``use_weights``), else 1.

        Args:
            item_idx: Encoded items of the new user's history (distinct).
            weights: Optional rating per item; None means 1.

        Returns:
            float32 array (n_items,).
        """
        if self.item_similarity is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        item_idx = np.asarray(item_idx, dtype=np.int64)
        values = (
            np.asarray(weights, dtype=np.float32)
            if weights is not None and self._scores_weights()
            else np.ones(len(item_idx), dtype=np.float32)
        )
        row = sp.csr_matrix(
            (values, (np.zeros(len(item_idx), dtype=np.int64), item_idx)),
            shape=(1, self.n_items),
        )
        scores = np.asarray((row @ self.item_similarity).toarray(), dtype=np.float32)
        self._mutual_information_rule(row, scores)
        return scores.ravel()

    def _scores_weights(self) -> bool:
        """Whether a history's weights enter its row (else every item counts 1)."""
        return not self.binary_user_side

    def item_similarity_scores(self, item_idx: int) -> np.ndarray:
        """One row of the similarity, -inf where none is stored (and for the item itself).

        Raises:
            ValueError: If the model is not fitted or the item is out of range.
        """
        if self.item_similarity is None:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        item_idx = checked_item(item_idx, self.item_similarity.shape[0])
        return sparse_similarity_row(self.item_similarity, item_idx)

    def explain(
        self, history_idx: np.ndarray, history_weights: np.ndarray, item_idx: np.ndarray, k: int = 3
    ) -> list[list[tuple[int, float]]]:
        """History items with the largest ``weight * similarity`` terms of each item's score
        (:meth:`Explains.explain`). ``history_weights`` are SAR's affinities (from
        :meth:`user_history` or the fold-in); item KNN ignores them (its user side is binary)."""
        if self.binary_user_side:
            history_weights = np.ones(len(history_idx), dtype=np.float32)
        return explain_item_item(self.item_similarity, history_idx, history_weights, item_idx, k)


def explain_item_item(
    similarity: sp.csr_matrix,
    history_idx: np.ndarray,
    history_weights: np.ndarray,
    item_idx: np.ndarray,
    k: int,
) -> list[list[tuple[int, float]]]:
    """Contributions ``weight_h * S[h, j]`` of history items h to items j of an item-item model.

    A score ``sum_h weight_h * S[h, j]`` is a sum of these terms, so the largest are the
    "because you watched" items.

    Args:
        similarity: Item x item CSR matrix the scores are computed with.
        history_idx: Encoded history items.
        history_weights: Their weights.
        item_idx: Encoded recommended items.
        k: Contributors kept per recommended item.

    Returns:
        Per recommended item, up to k ``(history item_idx, contribution)`` pairs, largest first,
        ties by the smaller item index; only positive contributions.
    """
    history_idx = np.asarray(history_idx, dtype=np.int64)
    item_idx = np.asarray(item_idx, dtype=np.int64)
    if not len(history_idx) or not len(item_idx):
        return [[] for _ in item_idx]
    terms = similarity[history_idx][:, item_idx].toarray().astype(np.float64)
    return ranked_contributions(terms, history_idx, history_weights, k)


def ranked_contributions(
    terms: np.ndarray, history_idx: np.ndarray, history_weights: np.ndarray, k: int
) -> list[list[tuple[int, float]]]:
    """The k largest positive ``weight_h * terms[h, j]`` per column j, ties to the smaller item.

    Args:
        terms: ``S[h, j]`` for history items h (rows) and recommended items j (columns), float64.
        history_idx: Encoded history items (the rows).
        history_weights: Their weights.
        k: Contributors kept per recommended item.
    """
    terms = terms * np.asarray(history_weights, dtype=np.float64)[:, None]
    out = []
    for column in terms.T:
        order = np.lexsort((history_idx, -column))
        out.append([(int(history_idx[h]), float(column[h])) for h in order[:k] if column[h] > 0])
    return out


def sparse_similarity_row(similarity: sp.csr_matrix, item_idx: int) -> np.ndarray:
    """One item's row of a sparse item x item similarity, dense; -inf where no similarity is
    stored (the items never co-occur, or are not neighbours) and for the item itself.

    Args:
        similarity: Item x item CSR matrix.
        item_idx: One encoded item.

    Returns:
        float32 array (n_items,).
    """
    row = similarity[int(item_idx)]
    out = np.full(similarity.shape[1], -np.inf, dtype=np.float32)
    out[row.indices] = row.data
    out[int(item_idx)] = -np.inf
    return out
