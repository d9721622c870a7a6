"""Reference SAR: Microsoft Recommenders' ``SARSingleNode``, used as its documentation shows.

Runs in ``benchmarks/.venv-reference`` (made by ``setup_reference_env.sh``), reads the encoded
train interactions the benchmark wrote, fits, and writes the top-k lists (seen items removed by
the library's ``remove_seen=True``) for the users asked for; our evaluator scores them later.

    .venv-reference/bin/python reference_sar.py INPUT_DIR OUT_DIR --similarity jaccard \
        --half-life-days 30
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from bench_io import Measurement, read_inputs, reference_args, top_k_matrix, write_outputs
from recommenders.models.sar.sar_singlenode import SARSingleNode

logging.disable(logging.INFO)


def main() -> None:
    helps = {
        "similarity": "the library's similarity_type",
        "half_life_days": "0: no time decay",
        "user_batch": "users per recommend call",
    }
    args = reference_args(
        __doc__, helps, similarity="jaccard", half_life_days=30.0, user_batch=2048
    )

    train, users, meta = read_inputs(args.input_dir)
    k = int(meta["k"])
    frame = pd.DataFrame(
        {
            "userID": train["user_idx"].to_numpy(),
            "itemID": train["item_idx"].to_numpy(),
            "rating": train["weight"].to_numpy(dtype=np.float64),
            "timestamp": train["ts"].to_numpy(dtype=np.float64),
        }
    )
    model = SARSingleNode(
        col_user="userID",
        col_item="itemID",
        col_rating="rating",
        col_timestamp="timestamp",
        similarity_type=args.similarity,
        time_decay_coefficient=args.half_life_days,
        timedecay_formula=args.half_life_days > 0,
    )
    with Measurement() as measured:
        measured.fit(model.fit, frame)
        parts = []
        for start in range(0, len(users), args.user_batch):
            batch = pd.DataFrame({"userID": users[start : start + args.user_batch]})
            parts.append(
                measured.recommend(model.recommend_k_items, batch, top_k=k, remove_seen=True)
            )
    recs = pd.concat(parts, ignore_index=True)  # sort_top_k=True: each user's rows best first
    items, scores = top_k_matrix(users, k, recs["userID"], recs["itemID"], recs["prediction"])
    notes = f"recommenders SARSingleNode, recommend_k_items in batches of {args.user_batch}"
    write_outputs(args.out_dir, users, items, scores, measured, notes)


if __name__ == "__main__":
    main()
