"""Per-epoch training throughput and scoring time of the deep families (NCF, two-tower) on CPU.

Why this script exists: NCF and the Merlin two-tower model cap their train rows on a CPU
(``max_train_rows``, :mod:`reclab.models.deep_scale`). This script measures what the cap rests
on: how many train rows per second an epoch gets through, what the per-epoch validation on a
user sample costs, and how long full-catalogue scoring takes per user, at a given size, with
every row used (no cap); the README extrapolates the figures to MovieLens-25M.

Steps:

1. Data through the real pipeline: the ``synthetic`` dataset (Zipf popularity, taste clusters,
   user and item features) with MovieLens-25M's rows per user and catalogue unless given
   (``--users`` = rows x 162,541 / 25,000,095; ``--items`` 59,047, the movies ML-25M's ratings
   touch), then ``data.prepare_dataset`` (default time split) and ``build_workflow``
   (NVTabular), into a work directory (``--work-dir`` keeps and reuses it).
2. Each family in a fresh subprocess (so memory peaks never mix): the encoded train data and
   validation window loaded as the flow loads them; ``--epochs`` epochs on every train row
   (``max_train_rows=None``), no early stopping, the epoch's validation NDCG@10 on the seeded
   sample of ``validation_sample_users`` (the default, 5,000) warm validation users; then the
   top-10 of ``--score-users`` warm validation users, timed (recommend: full-catalogue scores,
   seen items excluded, top-k).
3. Figures per epoch: train seconds and train rows / s (NCF also samples / s: positives plus
   its negatives, and the CPU time of drawing the negatives), validation seconds; scoring
   seconds per user; the worker's peak RSS; ``uptime`` before and after each family (the
   machine may be shared).

Usage::

    .venv/bin/python benchmarks/deep_throughput.py --rows 1000000
    .venv/bin/python benchmarks/deep_throughput.py --rows 5000000 --families ncf --epochs 1

Output: a table on stdout, progress on stderr, ``benchmarks/results/deep_throughput_<rows>.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

RESULTS_DIR = BENCH_DIR / "results"
# MovieLens-25M: 25,000,095 ratings by 162,541 users of 59,047 movies.
ML25M_ROWS, ML25M_USERS, ML25M_ITEMS = 25_000_095, 162_541, 59_047
FAMILIES = ("ncf", "two_tower")


def log(message: str) -> None:
    """A progress line on stderr, with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def uptime() -> str:
    """``uptime``'s line (load averages over 1, 5 and 15 min)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def prepare(rows: int, users: int, items: int, seed: int, work: Path) -> dict[str, Any]:
    """Generate, split and encode the synthetic data into ``work`` (reused when already there)."""
    from data import prepare_dataset, resolve_source
    from workflow_builder import build_workflow

    done = work / "prepared.json"
    if done.exists():
        info = json.loads(done.read_text(encoding="utf-8"))
        if info["request"] == {"rows": rows, "users": users, "items": items, "seed": seed}:
            log(f"reusing the prepared data in {work}")
            return info
        raise SystemExit(f"{work} holds data prepared for {info['request']}; use another dir")
    synthetic = {"n_interactions": rows, "n_users": users, "n_items": items, "seed": seed}
    source = resolve_source("synthetic", synthetic=synthetic)
    started = time.perf_counter()
    split = prepare_dataset(source, work / "split", seed=seed)
    split_seconds = time.perf_counter() - started
    log(f"split: train {split['train']['rows']:,} rows ({split_seconds:.0f} s)")
    started = time.perf_counter()
    built = build_workflow(work / "split", work / "built")
    workflow_seconds = time.perf_counter() - started
    log(f"build_workflow: {len(built.user_map):,} users x {len(built.item_map):,} items")
    info = {
        "request": {"rows": rows, "users": users, "items": items, "seed": seed},
        "train_rows": int(split["train"]["rows"]),
        "valid_rows": int(split["valid"]["rows"]),
        "n_users": len(built.user_map),
        "n_items": len(built.item_map),
        "split_seconds": split_seconds,
        "build_workflow_seconds": workflow_seconds,
        "training_end_date": split.get("training_end_date"),
        "validation_end_date": split.get("validation_end_date"),
    }
    done.write_text(json.dumps(info, indent=1), encoding="utf-8")
    return info


# --------------------------------------------------------------------------------------------
# Worker: one family in a fresh process
# --------------------------------------------------------------------------------------------


def worker(family: str, work: Path, epochs: int, score_users: int, seed: int, out: Path) -> None:
    """Fit one family on every train row for ``epochs`` epochs, time scoring, write JSON."""
    if family == "ncf":
        import torch  # noqa: F401  (torch before TensorFlow, as the flow does)
    from reclab.encoded import load_train, load_window
    from reclab.id_maps import IdMap
    from reclab.models.base import ValidationWindow
    from reclab.models.registry import make_model
    from workflow_builder.workflow import ITEM_ID, USER_ID

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    categories = work / "built" / "nvt" / "workflow" / "categories"
    user_map = IdMap.from_category_file(categories / f"unique.{USER_ID}.parquet", USER_ID)
    item_map = IdMap.from_category_file(categories / f"unique.{ITEM_ID}.parquet", ITEM_ID)
    train = load_train(work / "built" / "encoded", user_map, item_map)
    valid = load_window(work / "built" / "encoded", "valid")
    validation = ValidationWindow(valid.user_idx, valid.item_idx)
    params = {"epochs": epochs, "max_train_rows": None, "early_stopping_patience": None}
    model = make_model(family, params, seed=seed)
    rss_before = memory_mb("VmRSS")
    started = time.perf_counter()
    model.fit(train, validation)
    fit_seconds = time.perf_counter() - started
    warm = np.unique(valid.user_idx[valid.user_idx >= 0])
    chosen = np.random.default_rng(seed).choice(warm, min(score_users, len(warm)), replace=False)
    started, started_cpu = time.perf_counter(), time.process_time()
    model.recommend(np.sort(chosen), 10, exclude_seen=True)
    score_seconds = time.perf_counter() - started
    score_cpu_seconds = time.process_time() - started_cpu
    result = {
        "family": family,
        "params": model.params,
        "train_rows": len(train.user_idx),
        "train_rows_used": model.train_rows_used,
        "n_users": train.n_users,
        "n_items": train.n_items,
        "valid_warm_users": len(warm),
        "fit_seconds": fit_seconds,
        "history": model.history,
        "score_users": len(chosen),
        "score_seconds": score_seconds,
        "score_cpu_seconds": score_cpu_seconds,
        "peak_rss_mb": memory_mb("VmHWM"),
        "rss_before_fit_mb": rss_before,
    }
    if family == "ncf":
        result["ml25m_step_probe"] = ncf_step_probe(model, seed)
    else:
        result["loader_probe"] = merlin_loader_probe(train, model.train_batch_size, seed)
    out.write_text(json.dumps(result, indent=1, default=float), encoding="utf-8")


def ncf_step_probe(model: Any, seed: int, steps: int = 50) -> dict[str, float]:
    """Seconds per NCF training step with MovieLens-25M's embedding tables (162,541 users,
    59,047 items), same network, batch and optimiser (fused Adam, as NCFRecommender), on random
    ids.

    A step's cost grows with the tables (Adam updates every embedding row each step, not only
    those in the batch), so an epoch at ML-25M size is not linear in rows from a smaller
    table; this measures the step at full size directly.
    """
    import torch
    from torch import nn

    from reclab.models.ncf import NeuMF

    torch.manual_seed(seed)
    torch.set_num_threads(model.num_threads or torch.get_num_threads())
    network = NeuMF(ML25M_USERS, ML25M_ITEMS, model.gmf_dim, model.embedding_dim, model.layer_dims)
    optimizer = torch.optim.Adam(network.parameters(), lr=model.learning_rate, fused=True)
    loss_fn = nn.BCEWithLogitsLoss()
    batch = model.train_batch_size
    users = torch.randint(0, ML25M_USERS, (steps + 5, batch))
    items = torch.randint(0, ML25M_ITEMS, (steps + 5, batch))
    labels = (torch.rand(steps + 5, batch) < 0.2).float()
    for step in range(steps + 5):
        if step == 5:  # warm-up done
            started, started_cpu = time.perf_counter(), time.process_time()
        loss = loss_fn(network(users[step], items[step]), labels[step])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    timings = (time.perf_counter() - started) / steps, (time.process_time() - started_cpu) / steps
    return {"batch_size": batch, "seconds_per_step": timings[0], "cpu_seconds_per_step": timings[1]}


def merlin_loader_probe(train: Any, batch_size: int, seed: int, rows: int = 1_000_000) -> dict:
    """Rows per second of the two-tower's input pipeline alone (Merlin's CPU loader over the
    NVTabular train rows, shuffled, as in training), no model: what bounds an epoch once the
    model's steps are fast (on a GPU)."""
    import merlin.models.tf as mm
    from merlin.io import Dataset

    from reclab.models.two_tower import _TowerData

    data = _TowerData.load(Path(train.nvt_dir), train)
    frame = data.train_frame.iloc[:rows]
    rng = np.random.default_rng(seed)
    loader = mm.Loader(
        Dataset(frame, schema=data.schema, cpu=True),
        batch_size=batch_size,
        shuffle=True,
        seed_fn=lambda: int(rng.integers(2**31 - 1)),
    )
    started, started_cpu = time.perf_counter(), time.process_time()
    batches = sum(1 for _ in loader)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
    return {
        "rows": len(frame),
        "batches": batches,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rows_per_second": len(frame) / seconds,
    }


def memory_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process from ``/proc/self/status``, in MiB.

    Not ``ru_maxrss``: it survives ``exec``, so a worker would report its parent's peak.
    """
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------------------------------------
# Parent: figures and extrapolation
# --------------------------------------------------------------------------------------------


def figures(result: dict[str, Any], train_rows_25m: float) -> dict:
    """Per-epoch throughput from the last epoch (the first includes warm-up), and the
    extrapolation to MovieLens-25M: training linear in train rows, scoring linear in users
    (the catalogue is already ML-25M's size unless --items said otherwise).

    Wall-clock figures depend on what else runs on the machine; the CPU seconds of the process
    (all its threads) do much less, so both are kept: ``*_cpu`` figures are what the work
    costs on cores of its own.
    """
    last = result["history"][-1]
    rows_per_second = result["train_rows"] / last["seconds"]
    per_user = result["score_seconds"] / max(result["score_users"], 1)
    items_factor = ML25M_ITEMS / result["n_items"]  # scoring is linear in the catalogue too
    out = {
        "epoch_seconds": [h["seconds"] for h in result["history"]],
        "epoch_cpu_seconds": [h.get("cpu_seconds", float("nan")) for h in result["history"]],
        "validation_seconds": [h["validation_seconds"] for h in result["history"]],
        "train_rows_per_second": rows_per_second,
        "train_rows_per_cpu_second": result["train_rows"] / last.get("cpu_seconds", float("nan")),
        "score_seconds_per_user": per_user,
        "score_cpu_seconds_per_user": result.get("score_cpu_seconds", float("nan"))
        / max(result["score_users"], 1),
        "ml25m_train_rows": train_rows_25m,
        "ml25m_epoch_minutes": train_rows_25m / rows_per_second / 60,
        "ml25m_epoch_cpu_minutes": train_rows_25m
        / result["train_rows"]
        * last.get("cpu_seconds", float("nan"))
        / 60,
        "ml25m_all_users_score_minutes": ML25M_USERS * per_user * items_factor / 60,
    }
    if "samples_per_second" in last:
        out["samples_per_second"] = last["samples_per_second"]
        out["negative_sampling_seconds"] = last.get("sampling_seconds")
    probe = result.get("ml25m_step_probe")
    if probe:
        # ML-25M's ratings are distinct (user, item) pairs: every train row is a positive,
        # each with `negatives` sampled negatives per epoch.
        negatives = int(result["params"]["negatives"])
        steps = train_rows_25m * (1 + negatives) / probe["batch_size"]
        out["ml25m_epoch_minutes_from_step_probe"] = steps * probe["seconds_per_step"] / 60
        out["ml25m_epoch_cpu_minutes_from_step_probe"] = steps * probe["cpu_seconds_per_step"] / 60
    return out


def merged_with_earlier(path: Path, data: dict, rows: list[dict]) -> list[dict]:
    """This run's families plus those of an earlier run on the same data in ``path`` (families
    can be measured one at a time, each with the machine to itself); this run's win."""
    if not path.exists():
        return rows
    earlier = json.loads(path.read_text(encoding="utf-8"))
    if earlier.get("data", {}).get("request") != data["request"]:
        return rows
    measured = {row["family"] for row in rows}
    kept = [row for row in earlier.get("families", []) if row["family"] not in measured]
    return sorted(kept + rows, key=lambda row: FAMILIES.index(row["family"]))


def format_table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'family':<10} {'train rows':>11} {'epoch s':>8} {'CPU s':>7} {'rows/s':>8} "
        f"{'samples/s':>9} {'valid s':>7} {'score ms/user':>13} {'peak MB':>8} | ML-25M: "
        f"{'epoch min':>9} {'CPU min':>7} {'full-table step probe min':>25} "
        f"{'all-users score min':>19}"
    )
    lines = [header]
    for row in rows:
        f = row["figures"]
        samples = f.get("samples_per_second")
        probe = f.get("ml25m_epoch_minutes_from_step_probe")
        lines.append(
            f"{row['family']:<10} {row['train_rows']:>11,} {f['epoch_seconds'][-1]:>8.1f} "
            f"{f['epoch_cpu_seconds'][-1]:>7.1f} {f['train_rows_per_second']:>8,.0f} "
            f"{'-' if samples is None else f'{samples:,.0f}':>9} "
            f"{f['validation_seconds'][-1]:>7.1f} {1000 * f['score_seconds_per_user']:>13.2f} "
            f"{row['peak_rss_mb']:>8,.0f} | {'':>8} {f['ml25m_epoch_minutes']:>9.1f} "
            f"{f['ml25m_epoch_cpu_minutes']:>7.1f} {'-' if probe is None else f'{probe:.1f}':>25} "
            f"{f['ml25m_all_users_score_minutes']:>19.1f}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic interactions")
    parser.add_argument("--users", type=int, default=0, help="default: ML-25M's rows per user")
    parser.add_argument("--items", type=int, default=ML25M_ITEMS, help="catalogue size")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--epochs", type=int, default=2, help="epochs per family (>= 1)")
    parser.add_argument("--score-users", type=int, default=2000, help="users scored (timed)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work-dir", default="", help="keep and reuse the prepared data here")
    parser.add_argument("--results-dir", default=str(RESULTS_DIR))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per family")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.epochs < 1 or args.score_users < 1:
        parser.error("--rows, --epochs and --score-users must be >= 1")
    unknown = set(args.families.split(",")) - set(FAMILIES)
    if unknown:
        parser.error(f"--families: unknown {sorted(unknown)}; choose from {FAMILIES}")
    args.users = args.users or max(1, round(args.rows * ML25M_USERS / ML25M_ROWS))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(
            args.worker,
            Path(args.work_dir),
            args.epochs,
            args.score_users,
            args.seed,
            Path(args.worker_out),
        )
        return
    keep = bool(args.work_dir)
    work = Path(args.work_dir) if keep else Path(tempfile.mkdtemp(prefix="deep_throughput_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        log(f"{args.rows:,} rows, {args.users:,} users, {args.items:,} items; {uptime()}")
        data = prepare(args.rows, args.users, args.items, args.seed, work)
        # Train rows and warm validation users at ML-25M size, scaled from this split.
        scale = ML25M_ROWS / args.rows
        rows = []
        for family in args.families.split(","):
            out = work / f"{family}.json"
            before = uptime()
            log(f"{family}: {args.epochs} epoch(s) on {data['train_rows']:,} rows; {before}")
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                f"--worker={family}",
                f"--worker-out={out}",
                f"--work-dir={work}",
                f"--epochs={args.epochs}",
                f"--score-users={args.score_users}",
                f"--seed={args.seed}",
            ]
            proc = subprocess.run(command, cwd=REPO, timeout=args.timeout, check=False)
            if proc.returncode != 0 or not out.exists():
                log(f"{family}: worker failed (exit {proc.returncode})")
                continue
            result = json.loads(out.read_text(encoding="utf-8"))
            result["uptime_before"], result["uptime_after"] = before, uptime()
            result["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
            result["figures"] = figures(result, data["train_rows"] * scale)
            rows.append(result)
        results_dir = Path(args.results_dir)
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"deep_throughput_{args.rows}.json"
        rows = merged_with_earlier(path, data, rows)
        table = format_table(rows)
        print(
            f"deep_throughput_{args.rows}: {data['train_rows']:,} train rows, "
            f"{data['n_users']:,} users x {data['n_items']:,} items; last epoch of "
            f"{args.epochs}; score = top-10 of {args.score_users:,} warm validation users"
        )
        print(table)
        payload = {
            "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": f"{os.cpu_count()} CPU cores, no GPU",
            "arguments": {k: v for k, v in vars(args).items() if not k.startswith("worker")},
            "data": data,
            "extrapolation": (
                "ML-25M: train rows = this split's train rows x 25,000,095 / rows; epoch time "
                "linear in train rows (last epoch's rows/s); scoring linear in users and in "
                f"the catalogue ({ML25M_USERS:,} users, {ML25M_ITEMS:,} items; the validation "
                "window's warm users scaled like the rows)"
            ),
            "families": rows,
            "table": table,
        }
        path.write_text(json.dumps(payload, indent=1, default=float), encoding="utf-8")
        log(f"wrote {path}")
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
