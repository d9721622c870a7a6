"""Run the real flow on MovieLens-shaped synthetic data at 1M, 10M and 25M rows and measure it.

Why this script exists: the families' own benchmark (``families.py``) times fit and recommend in
isolation; a user runs the whole flow. This script runs ``flows/train.py run --dataset
synthetic`` as a user would (CPU families, local datastore, ``--max-workers``), and records:

* per-step wall time, from the flow's log timestamps (``Task is starting`` / ``Task finished``:
  the step's first start to its last finish, and the summed task seconds of a foreach);
* the peak RSS of the whole process tree (the flow's process and all its descendants, sampled
  with psutil every ``--sample-seconds``), and the peak of each step's tasks (each task's
  process and its children, summed over the step's concurrent tasks);
* the whole run's wall time, the datastore size of the run (the local ``.metaflow`` folder),
  the machine's load average (1-minute value at start, end and the largest sampled) and the
  memory available at the start;
* each candidate's fit and recommend seconds and validation metric, from the run's leaderboard
  (read with the Metaflow client).

The synthetic data (``synthetic_flow_params``: distinct pairs, users and items scaled like
MovieLens) is generated into the cache before the run and timed on its own, so ``get_dataset``
measures the DuckDB split, not the one-off generation.

Usage::

    .venv/bin/python benchmarks/flow_scale.py --rows 1000000
    .venv/bin/python benchmarks/flow_scale.py --rows 1000000 10000000 25000000

Output: ``benchmarks/results/flow_scale_<rows>.json`` per size and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CPU_FAMILIES = "popularity,recent_popularity,sar,als,item_knn"
GB = 1024**3
# The targets at 25M rows (seconds and bytes).
TARGETS = {
    "peak_rss_bytes": 16 * GB,
    "run_seconds": 45 * 60,
    "get_dataset_seconds": 60,
    "build_workflow_seconds": 5 * 60,
}
TASK_LINE = re.compile(
    r"^(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) \[(?P<run>\d+)/(?P<step>\w+)/(?P<task>\d+) "
    r"\(pid (?P<pid>\d+)\)\] (?P<what>Task is starting|Task finished successfully|Task failed)"
)


def log(message: str) -> None:
    """A progress line on stderr, with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Sampler:
    """Samples the RSS of a process tree, in total and per flow step, in a background thread.

    Attributes:
        root_pid: The flow's process.
        interval: Seconds between samples.
        task_steps: Task process id -> step name, filled in from the flow's log as tasks start.
    """

    root_pid: int
    interval: float
    task_steps: dict[int, str] = field(default_factory=dict)
    peak_bytes: int = 0
    peak_at_seconds: float = 0.0
    peak_steps: dict[str, int] = field(default_factory=dict)
    step_peaks: dict[str, int] = field(default_factory=dict)
    timeline: list[tuple[float, int]] = field(default_factory=list)
    max_load: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        """One sample: RSS of every process in the tree, attributed to the step of its task."""
        try:
            root = psutil.Process(self.root_pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss: dict[int, int] = {}
        parents: dict[int, int] = {}
        for process in processes:
            try:
                rss[process.pid] = process.memory_info().rss
                parents[process.pid] = process.ppid()
            except psutil.NoSuchProcess:
                continue
        total = sum(rss.values())
        per_step: dict[str, int] = {}
        for pid, value in rss.items():
            step = self._step_of(pid, parents)
            per_step[step] = per_step.get(step, 0) + value
        elapsed = time.perf_counter() - self._started
        if total > self.peak_bytes:
            self.peak_bytes, self.peak_at_seconds, self.peak_steps = total, elapsed, per_step
        for step, value in per_step.items():
            self.step_peaks[step] = max(self.step_peaks.get(step, 0), value)
        self.timeline.append((round(elapsed, 1), total))
        self.max_load = max(self.max_load, os.getloadavg()[0])

    def _step_of(self, pid: int, parents: dict[int, int]) -> str:
        """The step whose task process is ``pid`` or an ancestor of it; else the runtime."""
        seen = 0
        while pid in parents and seen < 64:
            if pid in self.task_steps:
                return self.task_steps[pid]
            pid, seen = parents[pid], seen + 1
        return "runtime"


def parse_step_times(lines: list[str]) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """Per-step wall time from the flow's task log lines.

    Returns:
        ``(run_id, {step: {"start", "end", "wall_seconds", "task_seconds", "tasks",
        "failed"}})``: the step's first task start to its last task end, and the summed
        seconds of its tasks.
    """
    tasks: dict[tuple[str, str], dict[str, Any]] = {}
    run_id = None
    for line in lines:
        match = TASK_LINE.match(line)
        if not match:
            continue
        run_id = match["run"]
        stamp = datetime.strptime(match["stamp"], "%Y-%m-%d %H:%M:%S.%f").timestamp()
        entry = tasks.setdefault((match["step"], match["task"]), {"step": match["step"]})
        if match["what"] == "Task is starting":
            entry["start"] = stamp
        else:
            entry["end"] = stamp
            entry["failed"] = match["what"] == "Task failed"
    steps: dict[str, dict[str, Any]] = {}
    for entry in tasks.values():
        if "start" not in entry or "end" not in entry:
            continue
        step = steps.setdefault(
            entry["step"],
            {"start": entry["start"], "end": entry["end"], "task_seconds": 0.0, "tasks": 0},
        )
        step["start"] = min(step["start"], entry["start"])
        step["end"] = max(step["end"], entry["end"])
        step["task_seconds"] += entry["end"] - entry["start"]
        step["tasks"] += 1
        step["failed"] = step.get("failed", False) or entry.get("failed", False)
    for step in steps.values():
        step["wall_seconds"] = step["end"] - step["start"]
    return run_id, dict(sorted(steps.items(), key=lambda item: item[1]["start"]))


def directory_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path``."""
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def read_leaderboard(work: Path, run_id: str, validation_metric: str) -> list[dict[str, Any]]:
    """Fit / recommend seconds and the validation metric of every candidate of the run.

    Read with the Metaflow client in a subprocess started in ``work`` (where the run's local
    datastore is), so this process's Metaflow configuration stays untouched.
    """
    code = (
        "import json, sys\n"
        "from metaflow import Run, namespace\n"
        "namespace(None)\n"
        f"board = Run('TrainFlow/{run_id}').data.leaderboard\n"
        f"columns = ['candidate_id', 'family', 'params', 'fit_seconds', 'recommend_seconds',\n"
        f"           'valid_{validation_metric}', 'test_{validation_metric}']\n"
        "print(json.dumps(board[[c for c in columns if c in board]].to_dict('records')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "USERNAME": os.environ.get("USERNAME", "bench")},
    )
    if proc.returncode != 0:
        log(f"could not read the leaderboard: {proc.stderr.strip().splitlines()[-1:]}")
        return []
    return json.loads(proc.stdout.strip().splitlines()[-1])


def generate(rows: int, seed: int) -> tuple[dict[str, int], float]:
    """Generate (or find cached) the flow's synthetic data for ``rows``; its params, seconds."""
    from data import resolve_source
    from reclab.training import synthetic_flow_params

    params = synthetic_flow_params(rows, seed=seed)
    source = resolve_source("synthetic", synthetic=params)
    started = time.perf_counter()
    source.fetch()
    return params, time.perf_counter() - started


def flow_command(rows: int, args: argparse.Namespace) -> list[str]:
    """``flows/train.py run`` on ``rows`` synthetic rows, with the script's flow options."""
    return [
        sys.executable,
        str(REPO / "flows" / "train.py"),
        "--no-pylint",
        "run",
        "--dataset",
        "synthetic",
        "--synthetic-interactions",
        str(rows),
        "--models",
        args.models,
        "--max-workers",
        str(args.max_workers),
        "--seed",
        str(args.seed),
        *args.flow_args,
    ]


@dataclass
class FlowProcess:
    """What one watched flow process did.

    Attributes:
        lines: Its log lines (stdout and stderr).
        returncode: Its exit status.
        timed_out: Whether it was stopped after ``--timeout`` seconds.
        seconds: Its wall time.
        sampler: The memory samples of its process tree.
    """

    lines: list[str]
    returncode: int
    timed_out: bool
    seconds: float
    sampler: Sampler


def watch_flow(command: list[str], work: Path, args: argparse.Namespace) -> FlowProcess:
    """Run the flow in ``work`` while sampling its memory; stop it after ``args.timeout``.

    The log goes to ``work/flow.log``; task lines (every line with ``--verbose``) are echoed
    on stderr, and each task's process id is mapped to its step for the per-step peaks.
    """
    env = {**os.environ, "USERNAME": os.environ.get("USERNAME", "bench")}
    lines: list[str] = []
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    sampler = Sampler(process.pid, args.sample_seconds)
    sampler.start()
    log_path = work / "flow.log"
    timed_out = False
    with log_path.open("w", encoding="utf-8") as handle:

        def stop_after_timeout() -> None:
            nonlocal timed_out
            timed_out = True
            os.killpg(process.pid, signal.SIGTERM)

        timer = threading.Timer(args.timeout, stop_after_timeout)
        timer.start()
        for line in process.stdout:
            handle.write(line)
            handle.flush()
            lines.append(line.rstrip("\n"))
            match = TASK_LINE.match(line)
            if match and match["what"] == "Task is starting":
                sampler.task_steps[int(match["pid"])] = match["step"]
            if args.verbose or (match and match["what"] != "Task is starting"):
                print(line, end="", file=sys.stderr)
        process.wait()
        timer.cancel()
    seconds = time.perf_counter() - started
    sampler.stop()
    return FlowProcess(lines, process.returncode, timed_out, seconds, sampler)


def run_flow(rows: int, args: argparse.Namespace) -> dict[str, Any]:
    """One measured flow run at ``rows`` synthetic rows; the result record."""
    memory = psutil.virtual_memory()
    record: dict[str, Any] = {
        "rows": rows,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "memory_bytes": memory.total},
        "available_bytes_at_start": memory.available,
        "load_average_at_start": os.getloadavg(),
        "models": args.models,
        "max_workers": args.max_workers,
    }
    log(f"{rows} rows: generating the synthetic data (cached by parameters)")
    record["synthetic"], record["generate_seconds"] = generate(rows, args.seed)
    log(
        f"{rows} rows: {record['synthetic']['n_users']} users x "
        f"{record['synthetic']['n_items']} items ({record['generate_seconds']:.1f} s)"
    )
    work = Path(tempfile.mkdtemp(prefix=f"flow-scale-{rows}-", dir=args.work_root))
    command = flow_command(rows, args)
    record["command"] = " ".join(command)
    log(f"{rows} rows: running the flow in {work}")
    flow = watch_flow(command, work, args)
    sampler = flow.sampler
    run_id, steps = parse_step_times(flow.lines)
    datastore = work / ".metaflow"
    record.update(
        {
            "run_id": run_id,
            "completed": flow.returncode == 0 and not flow.timed_out,
            "returncode": flow.returncode,
            "timed_out": flow.timed_out,
            "run_seconds": flow.seconds,
            "peak_rss_bytes": sampler.peak_bytes,
            "peak_at_seconds": sampler.peak_at_seconds,
            "peak_rss_by_step_at_peak": sampler.peak_steps,
            "step_peak_rss_bytes": sampler.step_peaks,
            "steps": steps,
            "datastore_bytes": directory_bytes(datastore) if datastore.is_dir() else 0,
            "load_average_at_end": os.getloadavg(),
            "max_load_average_1min": sampler.max_load,
            "rss_timeline": sampler.timeline[:: max(1, len(sampler.timeline) // 400)],
            "log_tail": flow.lines[-40:],
        }
    )
    if record["completed"] and run_id:
        record["leaderboard"] = read_leaderboard(work, run_id, args.validation_metric)
    record["targets"] = check_targets(record)
    if args.keep_work_dir:
        record["work_dir"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return record


def check_targets(record: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets (set for 25M rows), met or not, with the figure."""
    steps = record["steps"]
    figures = {
        "completed": record["completed"],
        "peak_rss_bytes": record["peak_rss_bytes"],
        "run_seconds": record["run_seconds"],
        "get_dataset_seconds": steps.get("get_dataset", {}).get("wall_seconds"),
        "build_workflow_seconds": steps.get("build_workflow", {}).get("wall_seconds"),
    }
    out: dict[str, Any] = {
        "completed": {"value": figures["completed"], "met": figures["completed"]}
    }
    for name, limit in TARGETS.items():
        value = figures[name]
        out[name] = {"value": value, "limit": limit, "met": value is not None and value <= limit}
    return out


def format_record(record: dict[str, Any]) -> str:
    """A readable summary of one run: steps, memory, targets and candidates."""
    syn = record["synthetic"]
    lines = [
        f"flow_scale {record['rows']} rows ({syn['n_users']} users x {syn['n_items']} items, "
        f"distinct pairs), models {record['models']}, --max-workers {record['max_workers']}: "
        f"{'completed' if record['completed'] else 'FAILED'} in {record['run_seconds']:.0f} s; "
        f"peak RSS {record['peak_rss_bytes'] / GB:.2f} GB; datastore "
        f"{record['datastore_bytes'] / GB:.2f} GB; load {record['load_average_at_start'][0]:.1f}"
        f" at start, max {record['max_load_average_1min']:.1f}; generation "
        f"{record['generate_seconds']:.1f} s (cached afterwards)",
        f"{'step':<16}{'wall s':>9}{'task s':>9}{'tasks':>7}{'peak GB':>9}",
    ]
    for step, info in record["steps"].items():
        peak = record["step_peak_rss_bytes"].get(step, 0) / GB
        lines.append(
            f"{step:<16}{info['wall_seconds']:>9.1f}{info['task_seconds']:>9.1f}"
            f"{info['tasks']:>7}{peak:>9.2f}"
        )
    lines.append(f"{'target':<24}{'value':>12}{'limit':>12}  met")
    for name, target in record["targets"].items():
        value, limit = target["value"], target.get("limit")
        if name == "peak_rss_bytes":
            value, limit = value / GB, limit / GB
        shown = "-" if value is None else (f"{value:.1f}" if isinstance(value, float) else value)
        lines.append(
            f"{name:<24}{shown!s:>12}{'' if limit is None else f'{limit:.0f}':>12}  "
            f"{'yes' if target['met'] else 'NO'}"
        )
    board = record.get("leaderboard") or []
    if board:
        metric = [key for key in board[0] if key.startswith("valid_")][0]
        lines.append(f"{'candidate':<22}{'fit s':>9}{'rec s':>9}{metric:>18}")
        for row in board:
            lines.append(
                f"{row['candidate_id']:<22}{row['fit_seconds']:>9.1f}"
                f"{row['recommend_seconds']:>9.1f}{row[metric]:>18.4f}"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[1_000_000],
        help="synthetic rows per run, one run each (e.g. 1000000 10000000 25000000)",
    )
    parser.add_argument("--models", default=CPU_FAMILIES, help="the flow's --models")
    parser.add_argument("--max-workers", type=int, default=2, help="the flow's --max-workers")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--validation-metric", default="ndcg_at_10")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per flow run")
    parser.add_argument("--sample-seconds", type=float, default=0.5, help="RSS sample interval")
    parser.add_argument(
        "--work-root", default=None, help="where each run's datastore goes (a temporary folder)"
    )
    parser.add_argument("--keep-work-dir", action="store_true", help="keep datastore and log")
    parser.add_argument("--results-dir", default=str(RESULTS_DIR))
    parser.add_argument("--verbose", action="store_true", help="echo the whole flow log")
    parser.add_argument(
        "flow_args", nargs="*", help="more flow arguments after --, e.g. -- --grid full"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    failed = 0
    for rows in args.rows:
        record = run_flow(rows, args)
        path = results / f"flow_scale_{rows}.json"
        path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
        print(format_record(record))
        print(f"wrote {path}")
        failed += not record["completed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
