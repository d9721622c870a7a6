"""Plain-PyTorch NeuMF on the MovieLens-100k default split: the second opinion for ``ncf``.

Why this script exists: ``reclab.models.ncf.NCFRecommender`` must match a straightforward
NeuMF written without any of our code (16-dim GMF, 32-dim MLP embeddings, MLP 64-32-16, 4
uniform negatives per positive, redrawn when they are among the user's positives unless
``--no-reject``, 10 epochs, Adam 1e-3, batch 1024, BCE on logits). This script trains that
NeuMF (``reference_ncf.py``, the one ``families.py`` compares with) over several seeds; only the
split, the id encoding and the evaluator are ours, so the numbers mean the same as the
pipeline's. With ``--ours`` it also fits ``NCFRecommender`` with the same seeds and prints the
fit-time ratio ours / reference.

Split: global time windows at 1998-03-07 / 1998-03-31 (00:00 UTC); full-catalogue ranking with
the user's train items removed; NDCG@10.

Usage (from the repository root)::

    .venv/bin/python benchmarks/ncf_reference.py --seeds 0 1 2 --ours
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch  # before TensorFlow (imported by the workflow builder)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402
from reference_ncf import fit_reference  # noqa: E402

from reclab.encoded import load_train, load_window  # noqa: E402
from reclab.evaluation import evaluate  # noqa: E402

VALID_START, TEST_START = pd.Timestamp("1998-03-07"), pd.Timestamp("1998-03-31")


def load_split(data_dir: Path):
    """Encode the default split with the pipeline's workflow; returns (train, valid, test)."""
    from workflow_builder import build_workflow

    out = Path(tempfile.mkdtemp(prefix="ncf-reference-"))
    (out / "split").mkdir()
    raw = pd.read_csv(data_dir / "u.data", sep="\t", names=["user_id", "item_id", "weight", "ts"])
    raw["weight"] = raw.weight.astype(float)
    raw["ts"] = pd.to_datetime(raw.ts, unit="s")
    raw[raw.ts < VALID_START].to_parquet(out / "split/train.parquet")
    raw[(raw.ts >= VALID_START) & (raw.ts < TEST_START)].to_parquet(out / "split/valid.parquet")
    raw[raw.ts >= TEST_START].to_parquet(out / "split/test.parquet")
    built = build_workflow(out / "split", out)
    encoded = out / "encoded"
    train = load_train(encoded, built.user_map, built.item_map)
    return train, load_window(encoded, "valid"), load_window(encoded, "test")


def ndcg(recommend, train, window):
    result = evaluate(
        recommend,
        train.user_idx,
        train.item_idx,
        window.user_idx,
        window.item_idx,
        n_users=train.n_users,
        n_items=train.n_items,
        ks=(10,),
        bootstrap_samples=0,
    )
    return result.metrics["ndcg_at_10"]


def _report(model: str, seed: int, valid: float, test: float, fit_s: float) -> None:
    print(
        f"{model:<9} seed {seed}: valid {valid:.4f} test {test:.4f} fit {fit_s:.1f} s", flush=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/data/ml-100k")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ours", action="store_true", help="also fit NCFRecommender")
    parser.add_argument(
        "--no-reject",
        action="store_true",
        help="keep sampled negatives that are the user's positives (NVIDIA's sampler)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, valid, test = load_split(args.data_dir)
    rows = []
    for seed in args.seeds:
        started = time.perf_counter()
        recommend = fit_reference(
            train.user_idx,
            train.item_idx,
            train.n_users,
            train.n_items,
            seed,
            reject=not args.no_reject,
        )
        fit_s = time.perf_counter() - started
        rows.append(
            ("reference", seed, ndcg(recommend, train, valid), ndcg(recommend, train, test), fit_s)
        )
        _report(*rows[-1])
        if args.ours:
            from reclab.models.ncf import NCFRecommender

            model = NCFRecommender(
                seed=seed,
                device="cpu",
                num_threads=args.threads,
                reject_positives=not args.no_reject,
            )
            started = time.perf_counter()
            model.fit(train)
            fit_s = time.perf_counter() - started
            rows.append(
                (
                    "ours",
                    seed,
                    ndcg(model.recommend, train, valid),
                    ndcg(model.recommend, train, test),
                    fit_s,
                )
            )
            _report(*rows[-1])
    table = pd.DataFrame(rows, columns=["model", "seed", "valid", "test", "fit_s"])
    summary = table.groupby("model")[["valid", "test", "fit_s"]].agg(["mean", "min", "max"])
    print(summary.round(4).to_string())
    if args.ours:
        means = table.groupby("model").fit_s.mean()
        print(f"fit-time ratio ours / reference: {means['ours'] / means['reference']:.2f}")


if __name__ == "__main__":
    main()
