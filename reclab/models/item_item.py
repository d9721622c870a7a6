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

import numba
import numpy as np
import scipy.sparse as sp

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
    if isinstance(similarity, np.ndarray):
        if mutual_information:
            raise ValueError("the mutual-information rule needs the sparse similarity")
        _top_k_dense(
            user_rows.indptr,
            _unsigned(user_rows.indices),
            user_rows.data,
            np.ascontiguousarray(similarity, dtype=np.float32),
            seen_indptr,
            seen_indices,
            k,
            _chunks(n_users),
            items,
            scores,
        )
    elif similarity.nnz * 8 >= TILED_MIN_BYTES:
        if pointers is None:
            pointers = tile_pointers(similarity)
        similarity = _canonical(similarity, np.float32, sort=False)
        _top_k_tiled(
            user_rows.indptr,
            _unsigned(user_rows.indices),
            user_rows.data,
            pointers,
            _unsigned(similarity.indices),
            similarity.data,
            seen_indptr,
            seen_indices,
            n_items,
            k,
            mutual_information,
            TILE,
            USER_BLOCK,
            items,
            scores,
        )
    else:
        similarity = _canonical(similarity, np.float32, sort=False)
        _top_k_sparse(
            user_rows.indptr,
            _unsigned(user_rows.indices),
            user_rows.data,
            similarity.indptr,
            _unsigned(similarity.indices),
            similarity.data,
            seen_indptr,
            seen_indices,
            n_items,
            k,
            mutual_information,
            _chunks(n_users),
            items,
            scores,
        )
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
