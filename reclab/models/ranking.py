"""Top-k for families whose item scores do not depend on the user (popularity baselines).

Why this module exists: the generic path of :meth:`reclab.models.base.Recommender.recommend`
writes every user's copy of the same score row (2,048 x 59k floats a batch at MovieLens-25M
size), masks the user's train items and ranks the whole row, for what is one global ranking.
Here the catalogue is ranked once, and each user walks that ranking from the top, skipping
their train items, until ``k`` are found: ``O(k + |train items|)`` per user.

Ranking rule (the same as :func:`reclab.models.base.top_k`): higher score first, ties to the
smaller item index; ``-inf`` and NaN scores are never listed, and rows with fewer than ``k``
listable items are padded with item ``-1`` and score ``-inf``.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp


@numba.njit(parallel=True, cache=True)
def _walk_ranking(order, ranked_scores, seen_indptr, seen_indices, n_items, k, n_chunks):
    n_users = seen_indptr.shape[0] - 1
    items = np.full((n_users, k), -1, dtype=np.int64)
    scores = np.full((n_users, k), -np.inf, dtype=np.float32)
    for chunk in numba.prange(n_chunks):
        is_seen = np.zeros(n_items, dtype=np.bool_)
        for u in range(chunk, n_users, n_chunks):
            for p in range(seen_indptr[u], seen_indptr[u + 1]):
                is_seen[seen_indices[p]] = True
            filled = 0
            for position in range(order.shape[0]):
                if filled == k:
                    break
                item = order[position]
                if not is_seen[item]:
                    items[u, filled] = item
                    scores[u, filled] = ranked_scores[position]
                    filled += 1
            for p in range(seen_indptr[u], seen_indptr[u + 1]):
                is_seen[seen_indices[p]] = False
    return items, scores


def top_k_global_ranking(
    item_scores: np.ndarray, seen_rows: sp.csr_matrix, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items per user from one score per item, the user's seen items left out.

    Args:
        item_scores: float (n_items,) scores, the same for every user.
        seen_rows: Users x items CSR of the items to leave out of each user's list (their
            train items); a row without entries gets the global top k.
        k: Items per user (>= 1).

    Returns:
        (item_idx int64 (n, k), scores float32 (n, k)), best first; -1 / -inf padding.
    """
    scores = np.asarray(item_scores, dtype=np.float32)
    n_items = scores.size
    listable = np.flatnonzero(scores > -np.inf)  # drops -inf and NaN
    # score descending, then the smaller index (lexsort's last key is the primary one)
    order = listable[np.lexsort((listable, -scores[listable]))]
    seen_rows = sp.csr_matrix(seen_rows)
    n_users = seen_rows.shape[0]
    return _walk_ranking(
        order.astype(np.int64),
        scores[order],
        seen_rows.indptr,
        seen_rows.indices.view(np.uint32 if seen_rows.indices.itemsize == 4 else np.uint64),
        n_items,
        k,
        max(1, min(n_users, numba.get_num_threads() * 4)),
    )
