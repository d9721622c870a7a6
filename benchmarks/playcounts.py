"""Item KNN, SAR and EASE on play counts without timestamps, against MovieLens-100k ratings.

Why this script exists: cosine similarity on raw, heavy-tailed counts follows the few users
with huge counts (the scikit-learn item-KNN recommender on last.fm's play counts), so the
quick grid's item KNN must not read raw counts. The public play-count files are not available
here, so this script writes one in last.fm-360k's layout (user, item, plays; tab-separated, no
header, no timestamps) from MovieLens-100k's pairs: each user gets a listening volume drawn
from a log-normal (median e^2 plays, sigma 1.5: a few users play tens of thousands of times),
times ``e^(rating - 3)`` and a log-normal noise per pair. It then runs the real flow on that
file (the random per-user split, since there are no timestamps) and on MovieLens-100k (the
default time-window split), with one grid file holding every item-KNN weighting, and prints
both leaderboards.

    .venv/bin/python benchmarks/playcounts.py [--data-dir ../shared/data] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
GRID = {
    "popularity": {"quick": [{}]},
    "item_knn": {
        "quick": [
            {"n_neighbors": 50, "use_weights": False},
            {"n_neighbors": 50, "use_weights": True, "weighting": "raw"},
            {"n_neighbors": 50, "use_weights": True, "weighting": "log"},
            {"n_neighbors": 50, "use_weights": True, "weighting": "bm25"},
        ]
    },
    "sar": {
        "quick": [
            {"similarity": "jaccard", "time_decay_half_life_days": 30},
            {"similarity": "counts", "time_decay_half_life_days": 30},
        ]
    },
    "ease": {"quick": [{"l2": 50.0}, {"l2": 500.0}]},
}
MODELS = ",".join(GRID)


def write_play_counts(ratings: Path, out: Path, seed: int) -> pd.Series:
    """The play-count file described above; returns the plays for the summary."""
    data = pd.read_csv(ratings, sep="\t", names=["user", "item", "rating", "ts"])
    rng = np.random.default_rng(seed)
    volume = np.exp(rng.normal(2.0, 1.5, data["user"].max() + 1))
    noise = rng.lognormal(0.0, 1.0, len(data))
    plays = np.ceil(volume[data["user"]] * np.exp(data["rating"] - 3) * noise).astype(int)
    frame = pd.DataFrame({"user": "u" + data["user"].astype(str), "item": data["item"]})
    frame["plays"] = plays
    frame.to_csv(out, sep="\t", header=False, index=False)
    return frame["plays"]


def run_flow(work: Path, args: list[str]) -> None:
    env = {**os.environ, "USERNAME": "bench", "METAFLOW_HOME": str(work / "home")}
    command = [sys.executable, str(ROOT / "flows" / "train.py"), "--no-pylint", "run"]
    command += [*args, "--models", MODELS, "--grid-file", str(work / "grid.json")]
    subprocess.run(command, cwd=work, env=env, check=True, capture_output=True, timeout=3600)


def leaderboards(work: Path) -> list[tuple[str, pd.DataFrame]]:
    os.environ.update(USERNAME="bench", METAFLOW_HOME=str(work / "home"))
    os.environ["METAFLOW_DATASTORE_SYSROOT_LOCAL"] = str(work)
    from metaflow import Flow, namespace

    namespace(None)
    out = []
    for run in Flow("TrainFlow").runs():
        board = run.data.leaderboard
        columns = ["candidate_id", "params", "valid_ndcg_at_10", "test_ndcg_at_10"]
        out.append((f"{run.pathspec} ({run.data.split['method']})", board[columns]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reclab-playcounts-") as tmp:
        work = Path(tmp)
        (work / "grid.json").write_text(json.dumps(GRID))
        plays = write_play_counts(
            Path(args.data_dir) / "ml-100k" / "u.data", work / "plays.tsv", args.seed
        )
        print(
            f"plays per pair: median {plays.median():.0f}, mean {plays.mean():.0f}, "
            f"max {plays.max()}"
        )
        columns = {
            "names": ["user", "item", "plays"],
            "user": "user",
            "item": "item",
            "weight": "plays",
        }
        run_flow(
            work,
            [
                "--dataset",
                "file",
                "--interactions-file",
                str(work / "plays.tsv"),
                "--columns",
                json.dumps(columns),
            ],
        )
        run_flow(work, ["--data-dir", args.data_dir])
        with pd.option_context("display.width", 200, "display.max_colwidth", 70):
            for name, board in leaderboards(work):
                print(name)
                print(board.to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
