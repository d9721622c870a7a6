"""Reference Spark ALS: ``pyspark.ml.recommendation.ALS`` used directly, implicit preferences.

Fit time includes starting the local SparkSession and building the DataFrame (what a user pays
for one model); recommend uses ``recommendForUserSubset`` with enough extra items to drop each
user's train items afterwards (Spark has no seen-item filter).

    .venv/bin/python benchmarks/reference_als_spark.py INPUT_DIR OUT_DIR --rank 64 \
        --reg-param 0.05 --alpha 40 --max-iter 15
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import pandas as pd
from bench_io import PeakMemory, read_inputs, timed, write_outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--reg-param", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=40.0)
    parser.add_argument("--max-iter", type=int, default=15)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--master", default="local[*]")
    args = parser.parse_args()

    train, users, meta = read_inputs(args.input_dir)
    k = int(meta["k"])
    ratings = (
        train.groupby(["user_idx", "item_idx"], as_index=False)["weight"]
        .sum()
        .astype({"user_idx": "int32", "item_idx": "int32", "weight": "float32"})
    )
    seen = ratings.groupby("user_idx")["item_idx"].apply(set)
    extra = int(seen.reindex(users).map(len).max())

    def fit():
        from pyspark.ml.recommendation import ALS
        from pyspark.sql import SparkSession

        spark = (
            SparkSession.builder.master(args.master)
            .config("spark.ui.enabled", "false")
            .config("spark.driver.memory", "4g")
            # as ours does: without these a 15-sweep fit can overflow the JVM's 1 MB thread
            # stack deserialising the factor lineage
            .config("spark.driver.extraJavaOptions", "-Xss16m")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        spark.sparkContext.setCheckpointDir(checkpoints.name)
        # plain rows, not pandas: pyspark 4 refuses the repository's pandas 1.5 for conversions
        frame = spark.createDataFrame(
            list(ratings.itertuples(index=False, name=None)),
            "user_idx int, item_idx int, weight float",
        )
        als = ALS(
            rank=args.rank,
            regParam=args.reg_param,
            alpha=args.alpha,
            maxIter=args.max_iter,
            implicitPrefs=True,
            userCol="user_idx",
            itemCol="item_idx",
            ratingCol="weight",
            seed=args.seed,
            checkpointInterval=5,
        )
        return spark, als.fit(frame)

    def recommend(spark, model) -> pd.DataFrame:
        subset = spark.createDataFrame([(int(u),) for u in users], "user_idx int")
        rows = model.recommendForUserSubset(subset, k + extra).collect()
        out = pd.DataFrame(
            [
                (row["user_idx"], rec["item_idx"], rec["rating"])
                for row in rows
                for rec in row["recommendations"]
                if rec["item_idx"] not in seen.get(row["user_idx"], ())
            ],
            columns=["user_idx", "item_idx", "score"],
        )
        out = out.sort_values(["user_idx", "score"], ascending=[True, False], kind="stable")
        return out.groupby("user_idx").head(k)

    checkpoints = tempfile.TemporaryDirectory(prefix="reference-als-checkpoints-")
    with PeakMemory() as memory:
        (spark, model), fit_seconds = timed(fit)
        recs, recommend_seconds = timed(recommend, spark, model)
    spark.stop()
    checkpoints.cleanup()
    recs["rank"] = recs.groupby("user_idx").cumcount()
    items = np.full((len(users), k), -1, dtype=np.int64)
    scores = np.full((len(users), k), -np.inf)
    row = pd.Series(np.arange(len(users)), index=users)[recs["user_idx"].to_numpy()].to_numpy()
    items[row, recs["rank"].to_numpy()] = recs["item_idx"].to_numpy()
    scores[row, recs["rank"].to_numpy()] = recs["score"].to_numpy()
    write_outputs(
        args.out_dir,
        users,
        items,
        scores,
        fit_seconds,
        recommend_seconds,
        memory.peak_mb,
        notes=f"pyspark ALS {args.master}; fit includes SparkSession start; "
        f"recommendForUserSubset(k + {extra}) then seen items dropped",
    )


if __name__ == "__main__":
    main()
