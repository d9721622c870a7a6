"""Reference SAR: Microsoft Recommenders' ``SARSingleNode``, used as its documentation shows.

Runs in ``benchmarks/.venv-reference`` (made by ``setup_reference_env.sh``), reads the encoded
train interactions the benchmark wrote, fits, and writes the top-k lists (seen items removed by
the library's ``remove_seen=True``) for the users asked for; our evaluator scores them later.

    .venv-reference/bin/python reference_sar.py INPUT_DIR OUT_DIR --similarity jaccard \
        --half-life-days 30
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd
from bench_io import PeakMemory, read_inputs, timed, write_outputs
from recommenders.models.sar.sar_singlenode import SARSingleNode

logging.disable(logging.INFO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--similarity", default="jaccard", help="the library's similarity_type")
    parser.add_argument("--half-life-days", type=float, default=30.0, help="0: no time decay")
    parser.add_argument("--user-batch", type=int, default=2048, help="users per recommend call")
    args = parser.parse_args()

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
    with PeakMemory() as memory:
        _, fit_seconds = timed(model.fit, frame)
        parts, recommend_seconds = [], 0.0
        for start in range(0, len(users), args.user_batch):
            batch = pd.DataFrame({"userID": users[start : start + args.user_batch]})
            part, seconds = timed(model.recommend_k_items, batch, top_k=k, remove_seen=True)
            parts.append(part)
            recommend_seconds += seconds
    recs = pd.concat(parts, ignore_index=True)
    recs["rank"] = recs.groupby("userID").cumcount()  # sort_top_k=True: rows are best first
    items = np.full((len(users), k), -1, dtype=np.int64)
    scores = np.full((len(users), k), -np.inf)
    row = pd.Series(np.arange(len(users)), index=users)[recs["userID"].to_numpy()].to_numpy()
    items[row, recs["rank"].to_numpy()] = recs["itemID"].to_numpy()
    scores[row, recs["rank"].to_numpy()] = recs["prediction"].to_numpy()
    write_outputs(
        args.out_dir,
        users,
        items,
        scores,
        fit_seconds,
        recommend_seconds,
        memory.peak_mb,
        notes=f"recommenders SARSingleNode, recommend_k_items in batches of {args.user_batch}",
    )


if __name__ == "__main__":
    main()
