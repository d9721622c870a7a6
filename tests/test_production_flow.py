"""From experiment to production, through real TrainFlow runs on MovieLens-100k.

Four runs in a datastore of their own (the session's other runs must not compete):

1. ``--models popularity``: no run is in production, so it is promoted. Its served model is
   the refit on all the data: every one of the 943 users and 1682 items, and batch scores for
   943 users, while its evaluated fit (train window only) knows fewer.
2. ``--models recent_popularity``: a challenger that beats the incumbent (popularity's recipe,
   trained again on this run's split); the ``production`` tag moves to it.
3. ``--production run --models popularity``: the prod branch has no production run yet, so it
   is promoted there while run 2 stays the user branch's.
4. ``--models random``: the user branch's incumbent (recent popularity's recipe, from run 2)
   beats random, so the run is not promoted and says why. Serving loads run 3, the prod
   branch's production run: neither the latest run nor the user branch's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from reclab.production import ALL_WINDOWS, INCUMBENT_ID, PRODUCTION_TAG
from tests.conftest import DATASTORE_ROOT, FLOW, point_client_at_session_datastore

pytestmark = pytest.mark.slow


def back_to_session_datastore() -> None:
    """Point the client back at the session's datastore, once a run has made it."""
    if (Path(DATASTORE_ROOT) / ".metaflow").is_dir():
        point_client_at_session_datastore()


def run_in(root: Path, *args: str, top: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run TrainFlow with its datastore and metadata under ``root``, promotion on (default);
    ``top`` are options before ``run`` (``--production``)."""
    env = {name: value for name, value in os.environ.items() if name != "METAFLOW_RUN_PROMOTION"}
    env.update(
        {
            "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(root),
            "METAFLOW_HOME": str(root / "home"),
            "MAGICDIR_ROOT": str(root / "magicdir"),
        }
    )
    return subprocess.run(
        [sys.executable, str(FLOW), "--no-pylint", *top, "run", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def production_runs(tmp_path_factory, ml100k_dir):
    """The four runs' pathspecs, in order, and the root of their datastore."""
    root = tmp_path_factory.mktemp("production")
    pathspecs = []
    for models, top in (
        ("popularity", ()),
        ("recent_popularity", ()),
        ("popularity", ("--production",)),
        ("random", ()),
    ):
        result = run_in(
            root,
            "--data-dir",
            str(ml100k_dir.parent),
            "--models",
            models,
            "--bootstrap-samples",
            "20",
            top=top,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
        started = re.search(r"run-id (\d+)", result.stdout + result.stderr)
        pathspecs.append(f"TrainFlow/{started.group(1)}")
    yield pathspecs, root
    back_to_session_datastore()


@pytest.fixture
def client_at(production_runs):
    from metaflow import metadata, namespace

    metadata(f"local@{production_runs[1]}")
    namespace(None)
    yield
    back_to_session_datastore()


def test_first_run_serves_a_refit_that_knows_every_user_and_item(production_runs, client_at):
    from metaflow import Run

    run = Run(production_runs[0][0])
    best, evaluated = run.data.best_model, run.data.evaluated_model
    assert best.trained_on == ALL_WINDOWS and evaluated.trained_on == "train"
    assert len(best.user_map) == 943 and len(best.item_map) == 1682
    assert len(evaluated.user_map) < 943 and len(evaluated.item_map) < 1682
    # The metrics describe the evaluated fit of the recipe; the refit has nothing held out.
    assert best.metrics == evaluated.metrics
    scores = pd.read_parquet(run.data.batch_scores_location)
    assert scores["user_id"].nunique() == 943
    # A user first seen after the train window is served by the model, not as a cold start.
    new_user = sorted(set(best.user_map.raw_ids.tolist()) - set(evaluated.user_map.raw_ids))[0]
    assert not best.recommend(new_user, k=5).empty
    assert run.data.promotion_decision["promote"] is True
    assert "no run was in production" in run.data.promotion_decision["reason"]


def test_better_challenger_moves_the_production_tag(production_runs, client_at):
    from metaflow import Run

    first, second, _, _ = (Run(p) for p in production_runs[0])
    decision = second.data.promotion_decision
    assert decision["promote"] is True and decision["winner"].startswith("recent_popularity")
    assert decision["incumbent_run"] == first.pathspec
    assert decision["winner_metric"] > decision["incumbent_metric"]
    assert PRODUCTION_TAG in second.tags and PRODUCTION_TAG not in first.tags


def test_incumbent_that_wins_is_not_promoted_and_says_why(production_runs, client_at):
    from metaflow import Run

    _, second, _, fourth = (Run(p) for p in production_runs[0])
    board = fourth.data.leaderboard
    assert board.iloc[0]["candidate_id"] == INCUMBENT_ID
    assert board.iloc[0]["family"] == "recent_popularity"
    decision = fourth.data.promotion_decision
    assert decision["promote"] is False
    assert decision["incumbent_run"] == second.pathspec
    assert f"the incumbent recipe of {second.pathspec} won" in decision["reason"]
    assert PRODUCTION_TAG not in fourth.tags


def test_branches_promote_apart_and_serving_prefers_the_prod_branch(production_runs, client_at):
    from metaflow import Run

    from reclab.serving import RecommendationService

    _, second, prod, _ = (Run(p) for p in production_runs[0])
    # The first run of the prod branch (--production) has no incumbent of its own branch.
    assert "project_branch:prod" in prod.tags
    assert prod.data.promotion_decision["incumbent_run"] is None
    assert PRODUCTION_TAG in prod.tags and PRODUCTION_TAG in second.tags
    assert RecommendationService.from_run().run_pathspec == prod.pathspec
