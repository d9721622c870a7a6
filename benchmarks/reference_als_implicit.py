"""Reference implicit ALS: the ``implicit`` library used directly, the way its docs show.

BM25-weighted rating matrix (ratings summed per pair, BM25 over items as in implicit's
examples), ``AlternatingLeastSquares``, and
``recommend(..., filter_already_liked_items=True)``. BLAS is limited to one thread, as implicit
asks (it warns otherwise); implicit's own solver uses every core.

    .venv/bin/python benchmarks/reference_als_implicit.py INPUT_DIR OUT_DIR --factors 64 \
        --regularization 0.05 --iterations 15
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from bench_io import Measurement, read_inputs, reference_args, write_outputs
from implicit.als import AlternatingLeastSquares
from implicit.nearest_neighbours import bm25_weight
from threadpoolctl import threadpool_limits


def main() -> None:
    args = reference_args(__doc__, factors=64, regularization=0.05, iterations=15, seed=42)

    train, users, meta = read_inputs(args.input_dir)
    k = int(meta["k"])
    user_items = sp.csr_matrix(
        (train["weight"].to_numpy(np.float32), (train["user_idx"], train["item_idx"])),
        shape=(meta["n_users"], meta["n_items"]),
    )
    model = AlternatingLeastSquares(
        factors=args.factors,
        regularization=args.regularization,
        iterations=args.iterations,
        random_state=args.seed,
    )

    def fit() -> None:
        # as implicit's examples: BM25 over the item x user matrix (items are the documents)
        model.fit(bm25_weight(user_items.T, K1=100, B=0.8).T.tocsr(), show_progress=False)

    with threadpool_limits(1, "blas"), Measurement() as measured:
        measured.fit(fit)
        items, scores = measured.recommend(
            model.recommend, users, user_items[users], N=k, filter_already_liked_items=True
        )
    notes = "implicit AlternatingLeastSquares on bm25_weight (K1=100, B=0.8); fit includes BM25"
    write_outputs(args.out_dir, users, items, scores, measured, notes)


if __name__ == "__main__":
    main()
