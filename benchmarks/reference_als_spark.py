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
from typing import Any

import pandas as pd
from bench_io import Measurement, read_inputs, reference_args, top_k_matrix, write_outputs


def fit(ratings: pd.DataFrame, args: argparse.Namespace, checkpoint_dir: str) -> tuple[Any, Any]:
    """Start a local SparkSession and fit ALS on the summed ratings; return both."""
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
    spark.sparkContext.setCheckpointDir(checkpoint_dir)
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


def recommend(
    spark: Any, model: Any, users: Any, k: int, extra: int, seen: pd.Series
) -> pd.DataFrame:
    """Each user's top ``k + extra``, their train items dropped, the best ``k`` kept, best first."""
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


def main() -> None:
    args = reference_args(
        __doc__, rank=64, reg_param=0.05, alpha=40.0, max_iter=15, seed=42, master="local[*]"
    )
    train, users, meta = read_inputs(args.input_dir)
    k = int(meta["k"])
    ratings = (
        train.groupby(["user_idx", "item_idx"], as_index=False)["weight"]
        .sum()
        .astype({"user_idx": "int32", "item_idx": "int32", "weight": "float32"})
    )
    seen = ratings.groupby("user_idx")["item_idx"].apply(set)
    extra = int(seen.reindex(users).map(len).max())

    with tempfile.TemporaryDirectory(prefix="reference-als-checkpoints-") as checkpoints:
        with Measurement() as measured:
            spark, model = measured.fit(fit, ratings, args, checkpoints)
            recs = measured.recommend(recommend, spark, model, users, k, extra, seen)
        spark.stop()
    items, scores = top_k_matrix(users, k, recs["user_idx"], recs["item_idx"], recs["score"])
    notes = (
        f"pyspark ALS {args.master}; fit includes SparkSession start; "
        f"recommendForUserSubset(k + {extra}) then seen items dropped"
    )
    write_outputs(args.out_dir, users, items, scores, measured, notes)


if __name__ == "__main__":
    main()
