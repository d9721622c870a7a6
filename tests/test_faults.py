"""Fault suite: the real flow (CLI) under failing candidates, bad input, interrupts and
concurrent runs.

* A candidate that raises and one that runs past a tiny time limit become failed leaderboard
  rows; the others train on, the card lists the failures, thin evidence is said plainly.
* Every candidate failing fails the run with one message; after fixing the grid file,
  ``resume plan_candidates`` reuses the data steps and trains the fixed candidate.
* Each bad input stops in ``start`` or ``get_dataset`` with what is wrong and how to fix it.
* SIGTERM / SIGINT leave no task process and no ``@magicdir`` folder; ``resume`` finishes.
* Concurrent runs in one directory never share outputs; a shared ``--scores-dir`` is refused.

Runs are kept small (a 150-user slice of MovieLens-100k, cheap families, 50 bootstrap
samples); the time limit is 20 s, well above the few seconds the cheap candidates need.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.conftest import DATASTORE_ROOT, FLOW, point_client_at_session_datastore, run_flow

pytestmark = pytest.mark.slow  # every test here runs the flow (or reads its run)

LIMIT = '{"candidate_seconds": 20}'
FILE_COLUMNS = '{"user": "user", "item": "item", "timestamp": "ts", "weight": "rating"}'
# A candidate that cannot finish: ALS with ten million iterations (on one thread).
ENDLESS_ALS = {"factors": 8, "iterations": 10_000_000, "num_threads": 1}
# A candidate that raises at fit on a machine whose implicit has no CUDA (pip wheels have none).
GPU_ALS = {"factors": 8, "use_gpu": True}
DUPLICATED_ROWS = 5
SPLIT_DATES = ["--training-end-date", "1997-11-21", "--validation-end-date", "1998-01-18"]


def _epoch(day: str) -> int:
    """Unix seconds of a day's 00:00 UTC."""
    return int(pd.Timestamp(day, tz="UTC").timestamp())


def _implicit_has_cuda() -> bool:
    import implicit.gpu

    return bool(implicit.gpu.HAS_CUDA)


@pytest.fixture(scope="module")
def slice_file(tmp_path_factory, ml100k_dir) -> Path:
    """The interactions of MovieLens users 1-150 as a CSV, with 5 rows written twice."""
    ratings = pd.read_csv(
        ml100k_dir / "u.data", sep="\t", names=["user", "item", "rating", "ts"], header=None
    )
    ratings = ratings[ratings["user"] <= 150]
    rows = pd.concat([ratings, ratings.iloc[:DUPLICATED_ROWS]], ignore_index=True)
    path = tmp_path_factory.mktemp("faults") / "slice.csv"
    rows.to_csv(path, index=False)
    return path


def _file_args(path: Path) -> list[str]:
    return ["--dataset", "file", "--interactions-file", str(path), "--columns", FILE_COLUMNS]


def _grid(tmp_path: Path, grids: dict, name: str = "grid.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({f: {"quick": c} for f, c in grids.items()}))
    return path


def _run(*args: str, limits: str = LIMIT, timeout: int = 600) -> subprocess.CompletedProcess:
    return run_flow("--config-value", "limits", limits, *args, timeout=timeout)


def _run_object(run_id: str):
    from metaflow import Run

    point_client_at_session_datastore()
    return Run(f"TrainFlow/{run_id}")


def _magicdir_folders(run_id: str) -> list[str]:
    base = Path(os.environ["MAGICDIR_ROOT"]) / "magicdir"
    return [p.name for p in base.glob(f"TrainFlow-{run_id}-*")] if base.is_dir() else []


def _processes_of(run_id: str) -> list[str]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if str(FLOW) in cmdline and run_id in cmdline:
            found.append(" ".join(cmdline))
    return found


def test_failed_candidates_are_rows_and_thin_evidence_is_said(slice_file, tmp_path) -> None:
    if _implicit_has_cuda():
        pytest.skip("implicit has CUDA here, so use_gpu=True would not fail")
    grid = _grid(
        tmp_path,
        {
            "popularity": [{}],
            "sar": [{"similarity": "counts"}],
            "als": [GPU_ALS, ENDLESS_ALS, {"factors": 8, "iterations": 5}],
        },
    )
    run_id_file = tmp_path / "run_id"
    result = _run(
        "run",
        *_file_args(slice_file),
        "--models",
        "popularity,sar,als",
        "--grid-file",
        str(grid),
        "--bootstrap-samples",
        "50",
        "--run-id-file",
        str(run_id_file),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    run = _run_object(run_id_file.read_text())
    board = run.data.leaderboard.set_index("candidate_id")
    assert board["status"].to_dict() == {
        "popularity-0": "ok",
        "sar-0": "ok",
        "als-0": "failed",
        "als-1": "failed",
        "als-2": "ok",
    }
    assert list(board.index[-2:]) == ["als-0", "als-1"]  # failures after every ranked row
    assert board.loc["als-0", "error_type"] == "ValueError"
    assert "use_gpu=True" in board.loc["als-0", "error"]
    assert board.loc["als-1", "error_type"] == "TimeoutException"
    assert "timed out after 0 hours, 0 minutes, 20 seconds" in board.loc["als-1", "error"]
    assert 0 < board.loc["als-1", "elapsed_seconds"] <= 21  # the limit counts from task start
    assert board.loc["als-0", "elapsed_seconds"] < 20
    assert board.loc[["als-0", "als-1"], "valid_ndcg_at_10"].isna().all()
    assert run.data.best_model_name in {"popularity", "sar", "als"}
    assert board.loc[run.data.leaderboard.iloc[0]["candidate_id"], "status"] == "ok"
    assert "als" in run.data.best_model_per_family  # from als-2, the one that trained
    # Thin evidence: few evaluable users in this slice, said in split, caveats and log.
    split = run.data.split
    assert split["evaluable_users"]["valid"] < 30
    assert any("the validation window has only" in c for c in split["caveats"])
    assert run.data.caveats[: len(split["caveats"])] == split["caveats"]
    assert "CAVEAT: the validation window has only" in result.stdout + result.stderr
    assert "overlaps_best" in run.data.leaderboard
    # Duplicate rows: dropped under the documented rule and counted in the notes.
    assert split["duplicates_dropped"] == DUPLICATED_ROWS
    assert any(n.startswith(f"{DUPLICATED_ROWS} exact duplicate rows") for n in split["notes"])
    # The card lists the failures and the caveats.
    card = _card_text(run)
    assert "2 of 5 candidates failed" in card
    assert "als-0" in card and "TimeoutException" in card and "use_gpu=True" in card
    assert "Caveats" in card and "evaluable users" in card
    assert _magicdir_folders(run.id) == []


def _card_text(run) -> str:
    import base64

    from metaflow.cards import get_cards

    html = get_cards(run["join"].task, id="leaderboard")[0].get()
    payload = re.search(r'window.__MF_DATA__\[[^\]]+\] = "([A-Za-z0-9+/=]+)"', html).group(1)
    return base64.b64decode(payload).decode()


def test_all_failed_then_resume_after_fixing_the_grid(slice_file, tmp_path) -> None:
    if _implicit_has_cuda():
        pytest.skip("implicit has CUDA here, so use_gpu=True would not fail")
    grid = _grid(tmp_path, {"als": [GPU_ALS]})
    run_id_file = tmp_path / "run_id"
    common = [*_file_args(slice_file), "--models", "als", "--bootstrap-samples", "50"]
    failed = _run("run", *common, "--grid-file", str(grid), "--run-id-file", str(run_id_file))
    output = failed.stdout + failed.stderr
    failed_id = run_id_file.read_text()
    assert failed.returncode != 0
    assert "Every candidate failed" in output and "the only candidate failed" in output
    assert "als-0 (ValueError: use_gpu=True" in output
    assert f"resume plan_candidates --origin-run-id {failed_id}" in output
    # The fix: the same grid file without use_gpu; resume re-plans and reuses the data steps.
    _grid(tmp_path, {"als": [{"factors": 8, "use_gpu": False}]})
    resumed = run_flow(
        "resume",
        "plan_candidates",
        "--origin-run-id",
        failed_id,
        "--run-id-file",
        str(run_id_file),
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-6000:]
    run = _run_object(run_id_file.read_text())
    assert run.id != failed_id and run.successful
    for step in ("start", "get_dataset", "build_workflow"):
        origin = run[step].task.origin_pathspec
        assert origin is not None and origin.startswith(f"TrainFlow/{failed_id}/{step}/"), step
    for step in ("plan_candidates", "train_cpu", "join"):
        assert run[step].task.origin_pathspec is None, step
    board = run.data.leaderboard
    assert board["candidate_id"].tolist() == ["als-0"] and board["status"].tolist() == ["ok"]
    assert json.loads(board.loc[0, "params"])["use_gpu"] is False


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, slice_file) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-grids-and-files")
    files = {}
    for name, text in {
        "als_nan": '{"als": {"quick": [{"factors": 8, "regularization": NaN}]}}',
        "knn_nan": '{"item_knn": {"quick": [{"n_neighbors": 20, "shrinkage": NaN}]}}',
        "recency_inf": '{"recent_popularity": {"quick": [{"half_life_days": Infinity}]}}',
        "als_zero_factors": '{"als": {"quick": [{"factors": 0}]}}',
    }.items():
        files[name] = root / f"{name}.json"
        files[name].write_text(text)
    ratings = pd.read_csv(slice_file)
    nan_weight = ratings.astype({"rating": str})
    nan_weight.loc[3, "rating"] = "nan"
    valid_start, test_start = (_epoch(day) for day in SPLIT_DATES[1::2])
    in_valid = (ratings["ts"] >= valid_start) & (ratings["ts"] < test_start)
    train_rows = ratings[ratings["ts"] < valid_start]
    for name, frame in {
        "negative": ratings.assign(rating=ratings["rating"] - 3),
        "nan_weight": nan_weight,
        "one_day": ratings.assign(ts=_epoch("1998-04-22") + ratings.index % 3600),
        # Every validation-window user is new: nobody there is in train.
        "new_valid_users": ratings.assign(
            user=ratings["user"].where(~in_valid, ratings["user"] + 10_000)
        ),
        # The test window only repeats train pairs: no user has anything new to find there.
        "no_new_test_items": pd.concat(
            [ratings[ratings["ts"] < test_start], train_rows.assign(ts=test_start + 86_400)]
        ),
        # 95% of the rows on the last day: the default 80th and 90th percentile days meet.
        "late_burst": ratings.assign(
            ts=ratings["ts"].where(ratings.index < len(ratings) // 20, _epoch("1998-04-22"))
        ),
    }.items():
        files[name] = root / f"{name}.csv"
        frame.to_csv(files[name], index=False)
    files["scores"] = root / "existing-scores"
    files["scores"].mkdir()
    return files


# Each case: the arguments, the step it must stop in, and what the message must say.
BAD_INPUT = {
    "NaN ALS regularization": (
        lambda f: ["--models", "als", "--grid-file", str(f["als_nan"])],
        "start",
        "regularization must be a finite number >= 0, got nan",
    ),
    "NaN item KNN shrinkage": (
        lambda f: ["--models", "item_knn", "--grid-file", str(f["knn_nan"])],
        "start",
        "shrinkage must be a finite number >= 0, got nan",
    ),
    "infinite half-life": (
        lambda f: ["--models", "recent_popularity", "--grid-file", str(f["recency_inf"])],
        "start",
        "half_life_days must be a finite number > 0, got inf",
    ),
    "zero ALS factors": (
        lambda f: ["--models", "als", "--grid-file", str(f["als_zero_factors"])],
        "start",
        "factors must be a finite whole number >= 1, got 0",
    ),
    "existing scores dir": (
        lambda f: ["--models", "popularity", "--scores-dir", str(f["scores"])],
        "start",
        "already exists; batch scores are never overwritten",
    ),
    "negative weights": (
        lambda f: _file_args(f["negative"]) + ["--models", "popularity"],
        "get_dataset",
        "have a negative weight in the weight column 'rating'",
    ),
    "NaN weight": (
        lambda f: _file_args(f["nan_weight"]) + ["--models", "popularity"],
        "get_dataset",
        "missing, NaN or infinite weight in the weight column 'rating' (e.g. nan)",
    ),
    "one day of data": (
        lambda f: _file_args(f["one_day"]) + ["--models", "popularity"],
        "get_dataset",
        "needs rows on at least 3 different days",
    ),
    "no evaluable validation user": (
        lambda f: _file_args(f["new_valid_users"]) + ["--models", "popularity", *SPLIT_DATES],
        "get_dataset",
        "the validation window (1997-11-21 <= ts < 1998-01-18)",
    ),
    "no evaluable test user": (
        lambda f: _file_args(f["no_new_test_items"]) + ["--models", "popularity", *SPLIT_DATES],
        "get_dataset",
        "the test window (ts >= 1998-01-18)",
    ),
    "colliding default dates": (
        lambda f: _file_args(f["late_burst"]) + ["--models", "popularity"],
        "get_dataset",
        "dates that give every window rows: --training-end-date",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_stops_before_training(case, bad_files, ml100k_dir) -> None:
    make_args, step, message = BAD_INPUT[case]
    result = _run("run", "--data-dir", str(ml100k_dir.parent), *make_args(bad_files))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Bad input" in output and message in output, output[-3000:]
    assert f"/{step}/" in output and "Task failed" in output
    later = ["get_dataset", "build_workflow"] if step == "start" else ["build_workflow"]
    assert not any(f"/{name}/" in output for name in later), output[-3000:]


def test_a_bad_time_limit_stops_before_start(ml100k_dir) -> None:
    result = _run("run", "--data-dir", str(ml100k_dir.parent), limits='{"candidate_seconds": -5}')
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "candidate_seconds must be a whole number of seconds >= 1" in output
    assert "/start/" not in output


def _start_run(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "run.log"
    process = subprocess.Popen(
        [sys.executable, str(FLOW), "--no-pylint", "--config-value", "limits", LIMIT, *args],
        cwd=DATASTORE_ROOT,
        env=dict(os.environ),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return process, log


def _wait_for(log: Path, pattern: str, process: subprocess.Popen, seconds: int = 300) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = log.read_text()
        match = re.search(pattern, text)
        if match:
            return match.group(1) if match.groups() else match.group(0)
        assert process.poll() is None, text[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} not seen in {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupt_leaves_nothing_behind_and_resume_finishes(stop, slice_file, tmp_path) -> None:
    grid = _grid(tmp_path, {"popularity": [{}], "als": [ENDLESS_ALS]})
    process, log = _start_run(
        tmp_path,
        "run",
        *_file_args(slice_file),
        "--models",
        "popularity,als",
        "--grid-file",
        str(grid),
        "--bootstrap-samples",
        "50",
    )
    run_id = _wait_for(log, r"Workflow starting \(run-id (\d+)\)", process)
    _wait_for(log, r"@magicdir\(dir='data'\) on train_cpu uses", process)
    assert _processes_of(run_id) and _magicdir_folders(run_id)
    process.send_signal(stop)  # to the run's process alone, as kill or a CI cancel does
    assert process.wait(timeout=60) != 0
    output = log.read_text()
    assert f"stopped by {stop.name}; no task of it is left running" in output
    assert f"resume --origin-run-id {run_id}" in output
    assert _processes_of(run_id) == []
    assert _magicdir_folders(run_id) == []
    if stop is signal.SIGINT:
        return  # one resume is enough: the same state is left by both signals
    # The limit is frozen with the run: resume takes no --config-value.
    resumed = run_flow("resume", "--origin-run-id", run_id, "--run-id-file", str(tmp_path / "id"))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-6000:]
    run = _run_object((tmp_path / "id").read_text())
    board = run.data.leaderboard.set_index("candidate_id")
    assert board["status"].to_dict() == {"popularity-0": "ok", "als-0": "failed"}
    assert board.loc["als-0", "error_type"] == "TimeoutException"
    assert run["build_workflow"].task.origin_pathspec.startswith(f"TrainFlow/{run_id}/")


def test_concurrent_runs_sharing_a_scores_dir(slice_file, tmp_path) -> None:
    """Two runs started together in one directory, naming one --scores-dir: one gets it."""
    shared = tmp_path / "scores"
    args = [*_file_args(slice_file), "--models", "popularity", "--bootstrap-samples", "50"]
    runs = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        runs.append(
            _start_run(
                folder,
                "run",
                *args,
                "--scores-dir",
                str(shared),
                "--run-id-file",
                str(folder / "id"),
            )
        )
    for process, _ in runs:
        process.wait(timeout=600)
    outputs = [log.read_text() for _, log in runs]
    codes = [process.returncode for process, _ in runs]
    assert sorted(codes) == [0, 1], [output[-2000:] for output in outputs]
    refused = outputs[codes.index(1)]
    assert "Bad input" in refused and "is claimed by run TrainFlow/" in refused
    assert "/get_dataset/" not in refused
    winner = _run_object((tmp_path / ("a", "b")[codes.index(0)] / "id").read_text())
    assert winner.data.batch_scores_location == str(shared)
    # The claim is gone; the directory holds exactly the winner's cache.
    assert sorted(p.name for p in shared.iterdir()) == [f"bucket={b}" for b in range(8)]
    # The cache covers every user of the data (the refit's), not only the train window's.
    users = pd.read_csv(slice_file)["user"].nunique()
    assert winner.data.batch_scores_rows == 10 * users > 10 * winner.data.split["train"]["users"]
