"""Reference EASE: Steck's closed form (2019) in plain NumPy, as printed in the paper.

``G = X^T X + l2 I`` on the dense binary user x item matrix, ``P = inv(G)``, ``B = P / -diag(P)``
with a zero diagonal, all in float64; a user's scores are ``x_u @ B``, train items masked, the
top k taken. Dense throughout, so it is for catalogues of a few thousand items (the check of our
float32, in-place Cholesky version on MovieLens-100k), not for scale.

    .venv/bin/python benchmarks/reference_ease.py INPUT_DIR OUT_DIR --l2 500
"""

from __future__ import annotations

import numpy as np
from bench_io import Measurement, dense_top_k, read_inputs, reference_args, write_outputs


def main() -> None:
    args = reference_args(__doc__, l2=500.0)

    train, users, meta = read_inputs(args.input_dir)
    k = int(meta["k"])
    binary = np.zeros((int(meta["n_users"]), int(meta["n_items"])))
    binary[train["user_idx"].to_numpy(), train["item_idx"].to_numpy()] = 1.0

    def fit() -> np.ndarray:
        gram = binary.T @ binary
        gram[np.diag_indices_from(gram)] += args.l2
        inverse = np.linalg.inv(gram)
        weights = inverse / -np.diag(inverse)
        weights[np.diag_indices_from(weights)] = 0.0
        return weights

    def recommend(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        def scores_of(batch: np.ndarray) -> np.ndarray:
            dense = binary[batch] @ weights
            dense[binary[batch] > 0] = -np.inf
            return dense

        return dense_top_k(users, k, scores_of)

    with Measurement() as measured:
        weights = measured.fit(fit)
        items, scores = measured.recommend(recommend, weights)
    write_outputs(args.out_dir, users, items, scores, measured, f"numpy float64, l2={args.l2}")


if __name__ == "__main__":
    main()
