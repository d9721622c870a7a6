"""Benchmark every model family against its reference implementation, on one split.

Why this script exists: FINDINGS.md quotes reference NDCG and fit times (Microsoft Recommenders'
SAR, ``implicit`` ALS, Spark ALS, scikit-learn item KNN) measured with the project's evaluator;
this script re-measures our families and those references side by side, on the SAME train data,
with the SAME evaluator, so a regression in quality, speed or memory shows as a number.

Steps:

1. The split is made by the real pipeline: ``data.resolve_source`` + ``data.prepare_dataset``
   (default dates; for MovieLens-100k 1998-03-07 / 1998-03-31) + ``build_workflow`` into a
   temporary directory. ``--synthetic-rows`` switches to the ``synthetic`` dataset.
2. The encoded train interactions and the users to recommend for (every warm user of the
   validation and test windows) are written once as parquet (see ``bench_io.py``).
3. Each run (one of our families, or a reference implementation in ``reference_*.py``) is a fresh
   subprocess that fits, recommends the top k for those users (timed, all users), measures its
   peak memory, and writes its lists back. Microsoft Recommenders runs in its own virtual
   environment (``benchmarks/.venv-reference``, created by ``setup_reference_env.sh`` when
   missing), since its pins clash with the repository's.
4. The parent scores every list with ``reclab.evaluation.evaluate`` (valid and test NDCG@k and
   Recall@k) and, for deterministic families, the share of users whose top-k lists are identical.

Usage::

    .venv/bin/python benchmarks/families.py [--data-dir DIR] [--families sar,als,item_knn]
    .venv/bin/python benchmarks/families.py --synthetic-rows 1000000 --synthetic-items 20000

Results: a printed table, and ``benchmarks/results/<tag>.csv`` / ``.json`` (one row per run).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from bench_io import Measurement, read_inputs, read_recs, timed, write_outputs  # noqa: E402

if TYPE_CHECKING:
    from data.source import Source

REFERENCE_VENV = BENCH_DIR / ".venv-reference"
RESULTS_DIR = BENCH_DIR / "results"


@dataclass(frozen=True)
class Run:
    """One of our families with fixed settings, and how to run its reference.

    Attributes:
        name: Unique run name, accepted by ``--families`` (as is the family name).
        family: Our registry family name.
        label: Family and settings, as printed.
        target: ``"module:Class"`` of our implementation.
        params: Constructor arguments of our implementation.
        reference: ``[script, args...]`` of the reference run, or empty when there is none.
        reference_venv: ``"repo"`` (the repository's .venv) or ``"reference"``.
        compare_lists: Report the share of identical top-k lists (deterministic families).
        scale: Part of the default set of the synthetic scale run.
    """

    name: str
    family: str
    label: str
    target: str
    params: dict[str, Any]
    reference: list[str] = field(default_factory=list)
    reference_venv: str = "repo"
    compare_lists: bool = False
    scale: bool = False


def _sar_run(similarity: str, library_similarity: str, scale: bool = False) -> Run:
    """SAR with a 30-day decay against Microsoft Recommenders' SAR with the same similarity.

    Args:
        similarity: Our name of the similarity.
        library_similarity: The library's name of it (its ``similarity_type``).
        scale: Part of the synthetic scale run.
    """
    return Run(
        f"sar_{similarity}",
        "sar",
        f"sar {similarity}, 30-day decay",
        "reclab.models.sar:SARRecommender",
        {"similarity": similarity, "time_decay_half_life_days": 30},
        ["reference_sar.py", "--similarity", library_similarity, "--half-life-days", "30"],
        "reference",
        compare_lists=True,
        scale=scale,
    )


def _ease_run(l2: int) -> Run:
    """EASE (binary) at one L2 penalty against the plain NumPy closed form at the same one."""
    return Run(
        f"ease_{l2}",
        "ease",
        f"ease l2 {l2}, binary",
        "reclab.models.ease:EASERecommender",
        {"l2": float(l2)},
        ["reference_ease.py", "--l2", str(l2)],
        compare_lists=True,
    )


RUNS: tuple[Run, ...] = (
    _sar_run("jaccard", "jaccard", scale=True),
    _sar_run("counts", "cooccurrence"),
    Run(
        "als_implicit",
        "als",
        "als implicit, 64 f, reg 0.05, 15 it, bm25",
        "reclab.models.als:ALSRecommender",
        {
            "engine": "implicit",
            "factors": 64,
            "regularization": 0.05,
            "iterations": 15,
            "weighting": "bm25",
            "seed": 42,
        },
        ["reference_als_implicit.py", "--factors", "64", "--regularization", "0.05"]
        + ["--iterations", "15", "--seed", "42"],
        scale=True,
    ),
    Run(
        "als_spark",
        "als",
        "als spark, rank 64, reg 0.05, alpha 40, 15 it",
        "reclab.models.als:ALSRecommender",
        {
            "engine": "spark",
            "factors": 64,
            "regularization": 0.05,
            "alpha": 40.0,
            "iterations": 15,
            "weighting": "linear",
            "seed": 42,
            "spark_master": "local[*]",
        },
        ["reference_als_spark.py", "--rank", "64", "--reg-param", "0.05", "--alpha", "40"]
        + ["--max-iter", "15", "--seed", "42", "--master", "local[*]"],
    ),
    Run(
        "item_knn",
        "item_knn",
        "item_knn cosine, 50 nn, weights",
        "reclab.models.knn:ItemKNNRecommender",
        {"n_neighbors": 50, "use_weights": True},
        ["reference_knn.py", "--n-neighbors", "50"],
        compare_lists=True,
        scale=True,
    ),
    _ease_run(500),
    _ease_run(50),
    Run(
        "ncf",
        "ncf",
        "ncf neumf 16/64-32-16, 4 neg, 10 ep",
        "reclab.models.ncf:NCFRecommender",
        {"seed": 42, "device": "cpu", "num_threads": 1},
        ["reference_ncf.py", "--seed", "42", "--threads", "1"],
    ),
    Run(
        "two_tower",
        "two_tower",
        "two_tower merlin, dim 64, logQ, adam 3e-3",
        "reclab.models.two_tower:TwoTowerRecommender",
        {"seed": 42},
    ),
    Run(
        "popularity",
        "popularity",
        "popularity (train counts)",
        "reclab.models.baselines:PopularityRecommender",
        {},
    ),
    Run(
        "recent_popularity",
        "recent_popularity",
        "recent_popularity, 7-day half-life",
        "reclab.models.recency:RecencyPopularityRecommender",
        {"half_life_days": 7},
    ),
)


def log(message: str) -> None:
    """A progress line on stderr, with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Worker: one of our families in a fresh process
# --------------------------------------------------------------------------------------------


def worker(target: str, params: dict[str, Any], input_dir: Path, out_dir: Path) -> None:
    """Fit our family on the benchmark inputs, recommend for every listed user, write results."""
    logging.basicConfig(level=logging.WARNING)
    from reclab.models.base import TrainData, ValidationWindow

    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    frame, users, meta = read_inputs(input_dir)
    ts = frame["ts"].to_numpy(dtype=np.float64)
    train = TrainData(
        user_idx=frame["user_idx"].to_numpy(dtype=np.int64),
        item_idx=frame["item_idx"].to_numpy(dtype=np.int64),
        weight=frame["weight"].to_numpy(dtype=np.float64),
        ts=None if np.isnan(ts).all() else ts,
        n_users=int(meta["n_users"]),
        n_items=int(meta["n_items"]),
        item_ids=np.load(input_dir / "item_ids.npy", allow_pickle=True),
        nvt_dir=meta.get("nvt_dir"),
    )
    # As in the flow: the validation window is there for families that early-stop on it.
    valid = pd.read_parquet(input_dir / "valid.parquet")
    validation = ValidationWindow(
        valid["user_idx"].to_numpy(dtype=np.int64), valid["item_idx"].to_numpy(dtype=np.int64)
    )
    model = cls(**params)
    # The user x item matrix is input preparation, as the references build theirs before timing.
    _ = train.matrix
    k = int(meta["k"])
    with Measurement() as measured:
        measured.fit(model.fit, train, validation)
        items, scores = measured.recommend(model.recommend, users, k, exclude_seen=True)
    write_outputs(out_dir, users, items, scores, measured, f"{target}({json.dumps(params)})")


# --------------------------------------------------------------------------------------------
# Parent: data, subprocesses, evaluation, table
# --------------------------------------------------------------------------------------------


def default_data_dir() -> str:
    """``$RECLAB_DATA_DIR`` if set, else ``../shared/data`` beside the repository."""
    return os.environ.get("RECLAB_DATA_DIR", "").strip() or str(REPO.parent / "shared" / "data")


def benchmark_source(args: argparse.Namespace) -> Source:
    """The dataset of the command line: MovieLens-100k, or synthetic rows of either shape."""
    from data import resolve_source

    if args.synthetic_rows and args.movielens_shape:
        from reclab.training import synthetic_flow_params

        synthetic = synthetic_flow_params(args.synthetic_rows, seed=args.seed)
        return resolve_source("synthetic", synthetic=synthetic)
    if args.synthetic_rows:
        synthetic = {
            "n_interactions": args.synthetic_rows,
            "n_items": args.synthetic_items,
            "n_users": args.synthetic_users,
            "seed": args.seed,
        }
        return resolve_source("synthetic", synthetic=synthetic)
    return resolve_source("movielens-100k", data_dir=args.data_dir)


def prepare_inputs(
    args: argparse.Namespace, work: Path, with_features: bool = True
) -> dict[str, Any]:
    """Run the real data pipeline into ``work`` and write the benchmark inputs.

    Args:
        args: The parsed command line.
        work: The work directory.
        with_features: Build the NVTabular features too (the two-tower model reads them); as
            in the flow, without such a family only the ids are encoded.

    Returns:
        ``encoded_dir``, ``input_dir``, ``n_users``, ``n_items``, ``users`` and ``split`` info.
    """
    from data import prepare_dataset
    from workflow_builder import build_workflow

    source = benchmark_source(args)
    log(f"preparing {source.name} with data.prepare_dataset (fetching/generating if needed)")
    info, seconds = timed(prepare_dataset, source, work / "split", seed=args.seed)
    log(
        f"split {info['method']} {info['training_end_date']} / {info['validation_end_date']}: "
        f"train {info['train']['rows']} rows, valid {info['valid']['rows']}, "
        f"test {info['test']['rows']} ({seconds:.1f} s)"
    )
    built, seconds = timed(
        build_workflow, work / "split", work / "built", with_features=with_features
    )
    log(
        f"build_workflow: {len(built.user_map)} users, {len(built.item_map)} items "
        f"({seconds:.1f} s)"
    )
    encoded = work / "built" / "encoded"
    inputs = work / "inputs"
    inputs.mkdir()
    train = pd.read_parquet(
        encoded / "train.parquet", columns=["user_idx", "item_idx", "weight", "ts"]
    )
    train.to_parquet(inputs / "train.parquet", index=False)
    warm = [
        pd.read_parquet(encoded / f"{name}.parquet", columns=["user_idx"])["user_idx"]
        for name in ("valid", "test")
    ]
    users = np.unique(np.concatenate([w[w >= 0].to_numpy(dtype=np.int64) for w in warm]))
    pd.DataFrame({"user_idx": users}).to_parquet(inputs / "users.parquet", index=False)
    pd.read_parquet(encoded / "valid.parquet", columns=["user_idx", "item_idx"]).to_parquet(
        inputs / "valid.parquet", index=False
    )
    meta = {
        "n_users": len(built.user_map),
        "n_items": len(built.item_map),
        "k": args.k,
        "nvt_dir": str(work / "built" / "nvt"),
    }
    (inputs / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    np.save(inputs / "item_ids.npy", np.asarray(built.item_map.raw_ids), allow_pickle=True)
    log(f"benchmark inputs: {len(train)} train rows, {len(users)} warm users to recommend for")
    return {
        "encoded_dir": encoded,
        "input_dir": inputs,
        "n_users": meta["n_users"],
        "n_items": meta["n_items"],
        "users": users,
        "train": train,
        "split": info,
    }


def ensure_reference_venv() -> str | None:
    """Create/refresh ``.venv-reference`` with ``setup_reference_env.sh``; None when it worked."""
    log("reference venv: bash benchmarks/setup_reference_env.sh (no-op when up to date)")
    proc = subprocess.run(
        ["bash", str(BENCH_DIR / "setup_reference_env.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        return "setup_reference_env.sh failed: " + " | ".join(tail)
    return None


def run_subprocess(command: list[str], out_dir: Path, timeout: float) -> tuple[dict | None, str]:
    """Run one measured process; returns (stats.json content or None, failure reason)."""
    log_path = out_dir.parent / f"{out_dir.name}.log"
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as handle:
        try:
            proc = subprocess.run(
                command,
                cwd=BENCH_DIR,
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, f"timed out after {timeout:.0f} s"
    if proc.returncode != 0 or not (out_dir / "stats.json").exists():
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        return None, f"exit {proc.returncode}: " + " | ".join(tail)
    stats = json.loads((out_dir / "stats.json").read_text(encoding="utf-8"))
    stats["wall_seconds"] = time.perf_counter() - started
    return stats, ""


# Runs whose fit + recommend take under a second are repeated at least this often.
FAST_RUN_SECONDS, FAST_RUN_REPEATS = 1.0, 9
Job = tuple[Callable[[Path], list[str]], Path]  # (command for an output dir, first output dir)


def run_interleaved(jobs: list[Job], repeats: int, timeout: float) -> list[tuple[dict | None, str]]:
    """Run each job ``repeats`` times in fresh processes, alternating jobs; median timings.

    Ours and the reference take turns (ours, reference, ours, ...), so a slow spell of the
    machine hits both. The lists of the first repeat stay in each job's output dir; later
    repeats write beside it. Fit and recommend seconds are the medians over the repeats (each
    repeat's are kept too), peak memory the largest peak. A job that fails stops repeating.
    When every job's first repeat took under ``FAST_RUN_SECONDS``, there are at least
    ``FAST_RUN_REPEATS`` repeats.
    """
    collected: list[list[dict]] = [[] for _ in jobs]
    failures = [""] * len(jobs)
    repeat = 0
    while repeat < repeats:
        for index, (make_command, out_dir) in enumerate(jobs):
            if failures[index]:
                continue
            target = out_dir if repeat == 0 else out_dir.with_name(f"{out_dir.name}.r{repeat}")
            stats, failure = run_subprocess(make_command(target), target, timeout)
            if stats is None:
                failures[index] = f"repeat {repeat + 1}: {failure}"
            else:
                collected[index].append(stats)
        if repeat == 0 and all(
            stats[0]["fit_seconds"] + stats[0]["recommend_seconds"] < FAST_RUN_SECONDS
            for stats in collected
            if stats
        ):
            repeats = max(repeats, FAST_RUN_REPEATS)  # sub-second timings are mostly noise
        repeat += 1
    results: list[tuple[dict | None, str]] = []
    for all_stats, failure in zip(collected, failures, strict=True):
        if failure:
            results.append((None, failure))
            continue
        merged = dict(all_stats[0])
        for key in ("fit_seconds", "recommend_seconds"):
            values = [stats[key] for stats in all_stats]
            merged[key] = float(np.median(values))
            merged[f"{key}_repeats"] = values
        merged["peak_rss_mb"] = max(stats["peak_rss_mb"] for stats in all_stats)
        results.append((merged, ""))
    return results


def evaluate_lists(lists: np.ndarray, prepared: dict[str, Any], k: int) -> dict[str, float]:
    """Valid/test NDCG@k and Recall@k of precomputed top-k lists, with our evaluator."""
    from reclab.evaluation import evaluate

    users, n_users = prepared["users"], prepared["n_users"]
    row_of = np.full(n_users, -1, dtype=np.int64)
    row_of[users] = np.arange(len(users))

    def recommend(user_idx: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        rows = row_of[user_idx]
        if (rows < 0).any():
            raise ValueError("the evaluator asked for a user that was not recommended for")
        items = lists[rows, :kk]
        return items, np.zeros(items.shape, dtype=np.float32)

    train = prepared["train"]
    out = {}
    for name in ("valid", "test"):
        window = pd.read_parquet(prepared["encoded_dir"] / f"{name}.parquet")
        result = evaluate(
            recommend,
            train["user_idx"].to_numpy(dtype=np.int64),
            train["item_idx"].to_numpy(dtype=np.int64),
            window["user_idx"].to_numpy(dtype=np.int64),
            window["item_idx"].to_numpy(dtype=np.int64),
            n_users=n_users,
            n_items=prepared["n_items"],
            ks=(k,),
            bootstrap_samples=0,
        )
        out[f"{name}_ndcg"] = result.metrics[f"ndcg_at_{k}"]
        out[f"{name}_recall"] = result.metrics[f"recall_at_{k}"]
        out[f"{name}_users"] = result.counts["evaluated_users"]
    return out


def skip_reason(run: Run) -> str | None:
    """Why our implementation of ``run`` cannot be benchmarked here, or None."""
    module_name, class_name = run.target.split(":")
    if importlib.util.find_spec(module_name) is None:
        return f"module {module_name} is missing"
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        cls(**run.params)
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        return f"{run.target}({run.params}) fails: {error}"
    return None


def reference_status(run: Run, args: argparse.Namespace, ref_error: str | None) -> str:
    """Empty when the reference of ``run`` is to be measured, else why not."""
    if not run.reference:
        return "no reference"
    if args.no_reference:
        return "skipped: --no-reference"
    if run.reference_venv == "reference" and ref_error:
        return f"skipped: {ref_error}"
    return ""


def measure(
    run: Run, prepared: dict[str, Any], work: Path, args: argparse.Namespace, ref_error: str | None
) -> dict[str, Any]:
    """Our run and its reference, each in fresh processes, scored by our evaluator."""
    k = args.k
    row: dict[str, Any] = {"run": run.name, "family": run.family, "settings": run.label}
    reason = skip_reason(run)
    if reason:
        log(f"{run.name}: SKIPPED ({reason})")
        return {**row, "status": f"skipped: {reason}"}
    out = work / "out" / run.name
    ref_out = work / "out" / f"{run.name}.reference"
    python = sys.executable
    if run.reference_venv == "reference":
        python = str(REFERENCE_VENV / "bin" / "python")

    def ours_command(target: Path) -> list[str]:
        return [
            sys.executable,
            str(BENCH_DIR / "families.py"),
            "--worker",
            run.target,
            json.dumps(run.params),
            str(prepared["input_dir"]),
            str(target),
        ]

    def reference_command(target: Path) -> list[str]:
        script = str(BENCH_DIR / run.reference[0])
        return [python, script, str(prepared["input_dir"]), str(target), *run.reference[1:]]

    ref_skipped = reference_status(run, args, ref_error)
    jobs: list[Job] = [(ours_command, out)] + (
        [] if ref_skipped else [(reference_command, ref_out)]
    )
    log(
        f"{run.name}: ours ({run.target})"
        + ("" if ref_skipped else f" and reference ({run.reference[0]})")
        + f", {args.repeats} repeat(s) ..."
    )
    results = run_interleaved(jobs, args.repeats, args.timeout)
    stats, failure = results[0]
    if stats is None:
        log(f"{run.name}: ours FAILED ({failure})")
        return {**row, "status": f"failed: {failure}"}
    ours = read_recs(out, prepared["users"], k)
    row.update(status="ok", **_figures("", stats, evaluate_lists(ours, prepared, k)))
    log(
        f"{run.name}: ours fit {stats['fit_seconds']:.2f} s, recommend "
        f"{stats['recommend_seconds']:.2f} s, peak {stats['peak_rss_mb']:.0f} MB, "
        f"valid ndcg {row['valid_ndcg']:.4f}, test ndcg {row['test_ndcg']:.4f}"
    )
    if ref_skipped:
        if ref_skipped != "no reference":
            log(f"{run.name}: reference {ref_skipped}")
        row["ref_status"] = ref_skipped
        return row
    ref_stats, failure = results[1]
    if ref_stats is None:
        log(f"{run.name}: reference FAILED ({failure})")
        row["ref_status"] = f"failed: {failure}"
        return row
    theirs = read_recs(ref_out, prepared["users"], k)
    row.update(ref_status="ok", **_figures("ref_", ref_stats, evaluate_lists(theirs, prepared, k)))
    row["fit_ratio"] = _ratio(row["fit_seconds"], row["ref_fit_seconds"])
    row["recommend_ratio"] = _ratio(row["recommend_seconds"], row["ref_recommend_seconds"])
    if run.compare_lists:
        row["same_topk_share"] = float((ours == theirs).all(axis=1).mean())
        overlap = [len(set(a[a >= 0]) & set(b[b >= 0])) for a, b in zip(ours, theirs, strict=True)]
        row["topk_overlap"] = float(np.mean(overlap) / k)
    log(
        f"{run.name}: reference fit {ref_stats['fit_seconds']:.2f} s, recommend "
        f"{ref_stats['recommend_seconds']:.2f} s, peak {ref_stats['peak_rss_mb']:.0f} MB, "
        f"valid ndcg {row['ref_valid_ndcg']:.4f}, test ndcg {row['ref_test_ndcg']:.4f}; "
        f"fit ratio {row['fit_ratio']:.3f}"
    )
    return row


def _figures(prefix: str, stats: dict, metrics: dict) -> dict[str, Any]:
    figures = {f"{prefix}{key}": value for key, value in metrics.items()}
    figures[f"{prefix}fit_seconds"] = stats["fit_seconds"]
    figures[f"{prefix}recommend_seconds"] = stats["recommend_seconds"]
    figures[f"{prefix}peak_rss_mb"] = stats["peak_rss_mb"]
    figures[f"{prefix}fit_seconds_repeats"] = stats.get("fit_seconds_repeats")
    figures[f"{prefix}recommend_seconds_repeats"] = stats.get("recommend_seconds_repeats")
    figures[f"{prefix}notes"] = stats["notes"]
    return figures


def _ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs > 0 else float("nan")


COLUMNS = (
    ("settings", "family / settings", "{}"),
    ("impl", "impl", "{}"),
    ("valid_ndcg", "val NDCG", "{:.4f}"),
    ("valid_recall", "val R@10", "{:.4f}"),
    ("test_ndcg", "test NDCG", "{:.4f}"),
    ("test_recall", "test R@10", "{:.4f}"),
    ("fit_seconds", "fit s", "{:.2f}"),
    ("recommend_seconds", "rec s", "{:.2f}"),
    ("peak_rss_mb", "peak MB", "{:.0f}"),
    ("fit_ratio", "fit ours/ref", "{:.3f}"),
    ("recommend_ratio", "rec ours/ref", "{:.3f}"),
    ("same_topk_share", "same top-10", "{:.1%}"),
)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain aligned text: one line for ours and one for the reference of each run."""
    lines = []
    for row in rows:
        if not row.get("status", "").startswith("ok"):
            lines.append({"settings": row["settings"], "impl": row["status"]})
            continue
        lines.append({**row, "impl": "ours"})
        if row.get("ref_status") == "ok":
            ref = {key[4:]: value for key, value in row.items() if key.startswith("ref_")}
            lines.append({**ref, "settings": "", "impl": "reference"})
        else:
            lines.append({"settings": "", "impl": f"reference: {row.get('ref_status')}"})
    cells = [[title for _, title, _ in COLUMNS]]
    for line in lines:
        cells.append([_cell(line.get(key), fmt) for key, _, fmt in COLUMNS])
    # free-text impl cells (skips, failures) are long: keep them out of the column width
    widths = [
        max(len(r[i]) for r in cells if i != 1 or len(r[i]) <= 12) for i in range(len(COLUMNS))
    ]
    text = []
    for r in cells:
        if len(r[1]) > 12:
            text.append(f"{r[0]:<{widths[0]}}  {r[1]}")
            continue
        parts = [f"{r[0]:<{widths[0]}}", f"{r[1]:<{widths[1]}}"]
        parts += [f"{c:>{w}}" for c, w in zip(r[2:], widths[2:], strict=True)]
        text.append("  ".join(parts).rstrip())
    return "\n".join(text)


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def select_runs(spec: str | None, synthetic: bool) -> list[Run]:
    """Runs named by ``--families`` (run or family names); defaults depend on the dataset."""
    if not spec:
        return [run for run in RUNS if run.scale or not synthetic]
    names = [name.strip() for name in spec.split(",") if name.strip()]
    known = {run.name for run in RUNS} | {run.family for run in RUNS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"--families: unknown {unknown}; known: {', '.join(sorted(known))}")
    return [run for run in RUNS if run.name in names or run.family in names]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=default_data_dir(), help="holds ml-100k/")
    parser.add_argument("--families", default=None, help="comma-separated run or family names")
    parser.add_argument("--synthetic-rows", type=int, default=0, help="use the synthetic dataset")
    parser.add_argument("--synthetic-items", type=int, default=20_000)
    parser.add_argument("--synthetic-users", type=int, default=100_000)
    parser.add_argument(
        "--movielens-shape",
        action="store_true",
        help="the flow's synthetic data: distinct pairs, users and items scaled with the rows "
        "like MovieLens (--synthetic-users/--synthetic-items ignored)",
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per measured run")
    parser.add_argument(
        "--repeats", type=int, default=3, help="fresh runs per measurement; median timings"
    )
    parser.add_argument("--no-reference", action="store_true", help="only our implementations")
    parser.add_argument("--keep-work-dir", action="store_true", help="keep the temporary files")
    parser.add_argument("--results-dir", default=str(RESULTS_DIR))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {args.repeats}")
    runs = select_runs(args.families, bool(args.synthetic_rows))
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message="Initializing an NVTabular Dataset in CPU mode")
    warnings.filterwarnings("ignore", message=".*CPU mode is experimental")
    if args.synthetic_rows and args.movielens_shape:
        tag = f"synthetic_movielens_{args.synthetic_rows}"
    elif args.synthetic_rows:
        tag = f"synthetic_{args.synthetic_rows}x{args.synthetic_items}"
    else:
        tag = "ml100k"
    work = Path(tempfile.mkdtemp(prefix=f"reclab-bench-{tag}-"))
    log(f"work directory {work}; runs: {', '.join(run.name for run in runs)}")
    try:
        from reclab.models.registry import reads_nvtabular_output

        prepared = prepare_inputs(
            args, work, with_features=reads_nvtabular_output([run.family for run in runs])
        )
        needs_ref_venv = any(r.reference_venv == "reference" for r in runs)
        ref_error = ensure_reference_venv() if needs_ref_venv and not args.no_reference else None
        rows = [measure(run, prepared, work, args, ref_error) for run in runs]
    finally:
        if not args.keep_work_dir:
            shutil.rmtree(work, ignore_errors=True)
    split = prepared["split"]
    header = (
        f"{tag}: train {split['train']['rows']} rows, {prepared['n_users']} users x "
        f"{prepared['n_items']} items; {len(prepared['users'])} warm users recommended for; "
        f"split {split['training_end_date']} / {split['validation_end_date']}; k={args.k}; "
        f"valid/test evaluated users {rows[0].get('valid_users', '-')}/"
        f"{rows[0].get('test_users', '-')}"
    )
    table = format_table(rows)
    print(header)
    print(table)
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(results / f"{tag}.csv", index=False)
    payload = {
        "dataset": tag,
        "header": header,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count()},
        "repeats": args.repeats,
        "load_average": os.getloadavg(),
        "memory_method": "RSS delta over the pre-fit RSS, process + children (bench_io.py)",
        "rows": rows,
        "table": table,
    }
    (results / f"{tag}.json").write_text(
        json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8"
    )
    log(f"wrote {results / tag}.csv and .json")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        worker(sys.argv[2], json.loads(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))
    else:
        main()
