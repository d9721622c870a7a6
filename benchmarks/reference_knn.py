"""Reference item KNN: the plain scikit-learn item-KNN a user would write.

``NearestNeighbors(metric="cosine", algorithm="brute")`` on the item x user rating matrix
(ratings summed per pair), each item's ``n_neighbors`` nearest other items kept as a sparse
similarity matrix ``S``; a user's score for item j is the sum of ``S[i, j]`` over the items i
they have in train (``user_binary @ S``); train items are masked and the top k taken.

    .venv/bin/python benchmarks/reference_knn.py INPUT_DIR OUT_DIR --n-neighbors 50
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from bench_io import Measurement, dense_top_k, read_inputs, reference_args, write_outputs
from sklearn.neighbors import NearestNeighbors


def main() -> None:
    args = reference_args(__doc__, n_neighbors=50)

    train, users, meta = read_inputs(args.input_dir)
    k, n_items = int(meta["k"]), int(meta["n_items"])
    ratings = sp.csr_matrix(
        (train["weight"].to_numpy(np.float64), (train["user_idx"], train["item_idx"])),
        shape=(meta["n_users"], n_items),
    )

    def fit() -> sp.csr_matrix:
        item_users = ratings.T.tocsr()
        knn = NearestNeighbors(metric="cosine", algorithm="brute").fit(item_users)
        distances, neighbours = knn.kneighbors(n_neighbors=args.n_neighbors)  # self excluded
        rows = np.repeat(np.arange(n_items), args.n_neighbors)
        return sp.csr_matrix(
            (1.0 - distances.ravel(), (rows, neighbours.ravel())), shape=(n_items, n_items)
        )

    def recommend(similarity: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        def scores_of(batch: np.ndarray) -> np.ndarray:
            seen = (ratings[batch] > 0).astype(np.float64)
            dense = (seen @ similarity).toarray()
            dense[seen.nonzero()] = -np.inf
            return dense

        return dense_top_k(users, k, scores_of)

    with Measurement() as measured:
        similarity = measured.fit(fit)
        items, scores = measured.recommend(recommend, similarity)
    notes = "scikit-learn NearestNeighbors cosine brute, kneighbors on all items at once"
    write_outputs(args.out_dir, users, items, scores, measured, notes)


if __name__ == "__main__":
    main()
