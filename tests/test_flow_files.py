"""The whole flow on interaction files as published: MovieLens-1M's ``::`` ``ratings.dat`` and a
headerless last.fm-style play-count TSV, both written from MovieLens-100k's u.data.

Each test runs ``flows/train.py run --dataset file --interactions-file ... --columns ...`` and
reads the split and the leaderboard back with the Metaflow client.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import point_client_at_session_datastore, run_flow
from tests.file_layouts import (
    lastfm_plays,
    ml100k_ratings,
    ml100k_titles,
    write_lastfm_tsv,
    write_movielens_dat,
)

FAMILIES = "popularity,sar"


def _run_file_flow(path, columns: dict) -> object:
    """Run TrainFlow on a user file; return the run as a Metaflow client Run."""
    from metaflow import Run

    result = run_flow(
        "run",
        "--dataset",
        "file",
        "--interactions-file",
        str(path),
        "--columns",
        json.dumps(columns),
        "--models",
        FAMILIES,
        "--bootstrap-samples",
        "50",
        "--max-workers",
        "2",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    run_id = re.search(r"run-id (\d+)", output).group(1)
    point_client_at_session_datastore()
    return Run(f"TrainFlow/{run_id}")


def _check_leaderboard(run) -> None:
    board = run.data.leaderboard
    assert set(board["family"]) == set(FAMILIES.split(","))
    assert board["valid_ndcg_at_10"].is_monotonic_decreasing
    assert (board["test_ndcg_at_10"] > 0).all()
    assert run.data.best_model_name == board.iloc[0]["family"]


@pytest.mark.slow
def test_flow_on_movielens_1m_dat(tmp_path, ml100k_dir) -> None:
    ratings = ml100k_ratings(ml100k_dir)
    path = write_movielens_dat(ratings, tmp_path / "ratings.dat")
    run = _run_file_flow(path, {"user": 0, "item": 1, "weight": 2, "timestamp": 3})
    source = run.data.source
    assert source.read_options["delimiter"] == "::" and source.read_options["header"] is False
    split = run.data.split
    assert split["method"] == "time_window"
    # The same rows as MovieLens-100k read by its own loader, so the same default dates.
    assert (split["training_end_date"], split["validation_end_date"]) == (
        "1998-03-07",
        "1998-03-31",
    )
    assert sum(split[s]["rows"] for s in ("train", "valid", "test")) == len(ratings)
    assert any("delimiter '::' (detected)" in note for note in split["notes"])
    _check_leaderboard(run)
    recs = run.data.best_model.recommend(int(ratings["user"].iloc[0]), k=10)
    assert len(recs) == 10 and recs["item_id"].isin(ratings["item"]).all()


@pytest.mark.slow
def test_flow_on_headerless_play_count_tsv(tmp_path, ml100k_dir) -> None:
    plays = lastfm_plays(ml100k_ratings(ml100k_dir), ml100k_titles(ml100k_dir))
    path = write_lastfm_tsv(plays, tmp_path / "usersha1-artmbid-artname-plays.tsv")
    run = _run_file_flow(path, {"user": 0, "item": 1, "weight": 3})
    source = run.data.source
    assert source.read_options["delimiter"] == "\t" and source.read_options["header"] is False
    split = run.data.split
    assert split["method"] == "random_per_user"
    assert split["training_end_date"] is None
    assert sum(split[s]["rows"] for s in ("train", "valid", "test")) == len(plays)
    assert split["train"]["users"] == plays["user"].nunique()
    _check_leaderboard(run)
    # String ids (SHA1 users, MBID artists) go through the id maps and come back out.
    recs = run.data.best_model.recommend(plays["user"].iloc[0], k=10)
    assert len(recs) == 10 and recs["item_id"].isin(plays["artist_id"]).all()
