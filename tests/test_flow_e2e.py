"""End-to-end: TrainFlow on the real MovieLens-100k files, read back through the Metaflow client.

The popularity row is checked against an independent recomputation of the evaluation protocol
from the raw u.data, written here with plain pandas and per-user Python sets.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATASTORE_ROOT, REPO_ROOT, point_client_at_session_datastore, run_flow
from tests.test_flow_inputs import run_on_ml100k

pytestmark = pytest.mark.slow  # every test here runs the flow (or reads its run)

TIMING_COLUMNS = ["fit_seconds", "recommend_seconds", "elapsed_seconds"]


@pytest.fixture(scope="module")
def run(trained_run):
    return trained_run


@pytest.fixture(scope="module")
def two_runs(trained_runs):
    return trained_runs


def test_leaderboard_has_every_candidate_and_metric(run) -> None:
    board = run.data.leaderboard
    from reclab.models.registry import FAMILIES

    assert set(board["family"]) == set(FAMILIES)
    for window in ("valid", "test"):
        for metric in ("recall", "precision", "ndcg", "map", "hit_rate", "coverage"):
            assert f"{window}_{metric}_at_10" in board
    assert {"params", *TIMING_COLUMNS} <= set(board.columns)
    assert board["valid_ndcg_at_10"].is_monotonic_decreasing
    # ML-100k's train window is under the deep families' CPU row cap: every row is used
    assert (board["train_rows_used"] == board["train_rows"]).all()
    assert (board["train_sample"] == "").all()


def test_best_model_and_split_artifacts(run) -> None:
    board = run.data.leaderboard
    top = board.iloc[0]
    assert top["valid_ndcg_at_10"] == board["valid_ndcg_at_10"].max()
    assert run.data.best_model_name == top["family"]
    assert json.dumps(run.data.best_params, sort_keys=True) == top["params"]
    assert f"best_model:{run.data.best_model_name}" in run.tags
    assert run.data.test_metrics["ndcg_at_10"] == top["test_ndcg_at_10"]
    split = run.data.split
    assert (split["training_end_date"], split["validation_end_date"]) == (
        "1998-03-07",
        "1998-03-31",
    )


def test_best_model_recommends_raw_ids_with_titles(run, ml100k_dir) -> None:
    recs = run.data.best_model.recommend(196, k=10)
    assert len(recs) == 10 and recs["rank"].tolist() == list(range(1, 11))
    assert recs["title"].notna().all()
    seen = pd.read_csv(ml100k_dir / "u.data", sep="\t", names=["u", "i", "r", "t"])
    train_seen = seen[(seen.u == 196) & (seen.t < pd.Timestamp("1998-03-07").timestamp())]
    assert not set(recs["item_id"]) & set(train_seen["i"])


def test_same_seed_gives_the_same_leaderboard(two_runs) -> None:
    first, second = (r.data.leaderboard.drop(columns=TIMING_COLUMNS) for r in two_runs)
    pd.testing.assert_frame_equal(first, second)


def test_card_shows_the_leaderboard_and_chart(run) -> None:
    import base64
    import re

    from metaflow.cards import get_cards

    html = get_cards(run["join"].task, id="leaderboard")[0].get()
    # The card embeds its components as base64 JSON, rendered by the bundled JavaScript.
    payload = re.search(r'window.__MF_DATA__\[[^\]]+\] = "([A-Za-z0-9+/=]+)"', html).group(1)
    content = base64.b64decode(payload).decode()
    for candidate_id in run.data.leaderboard["candidate_id"]:
        assert candidate_id in content
    assert '"type": "vegaChart"' in content and "valid_ndcg_at_10_low" not in content
    assert "bootstrap 95% interval" in content


def _independent_popularity_metrics(ml100k_dir, window_start, window_end, k=10) -> dict:
    raw = pd.read_csv(ml100k_dir / "u.data", sep="\t", names=["user", "item", "rating", "ts"])
    start = pd.Timestamp(window_start, tz="UTC").timestamp()
    end = pd.Timestamp(window_end, tz="UTC").timestamp() if window_end else math.inf
    train_end = pd.Timestamp("1998-03-07", tz="UTC").timestamp()
    train = raw[raw.ts < train_end]
    window = raw[(raw.ts >= start) & (raw.ts < end)]
    counts = train.groupby("item").size()
    ranking = sorted(counts.index, key=lambda item: (-counts[item], item))
    seen = train.groupby("user")["item"].apply(set).to_dict()
    ndcg, recall, precision, hit = [], [], [], []
    for user, items in window.groupby("user")["item"]:
        if user not in seen:
            continue
        relevant = set(items) - seen[user]
        if not relevant:
            continue
        recs = [item for item in ranking if item not in seen[user]][:k]
        hits = [rank for rank, item in enumerate(recs, start=1) if item in relevant]
        dcg = sum(1 / math.log2(rank + 1) for rank in hits)
        idcg = sum(1 / math.log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
        ndcg.append(dcg / idcg)
        recall.append(len(hits) / len(relevant))
        precision.append(len(hits) / k)
        hit.append(float(bool(hits)))
    return {
        "ndcg_at_10": np.mean(ndcg),
        "recall_at_10": np.mean(recall),
        "precision_at_10": np.mean(precision),
        "hit_rate_at_10": np.mean(hit),
    }


def test_popularity_row_equals_independent_recomputation(run, ml100k_dir) -> None:
    row = run.data.leaderboard.set_index("family").loc["popularity"]
    expected = {
        "valid": _independent_popularity_metrics(ml100k_dir, "1998-03-07", "1998-03-31"),
        "test": _independent_popularity_metrics(ml100k_dir, "1998-03-31", None),
    }
    for window, metrics in expected.items():
        for name, value in metrics.items():
            assert abs(row[f"{window}_{name}"] - value) < 1e-6, (window, name)
    assert abs(expected["valid"]["ndcg_at_10"] - 0.1221) < 5e-5


def test_code_package_holds_every_module_and_sql_file() -> None:
    result = run_flow("package", "list", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    listed = {line.strip() for line in result.stdout.splitlines() + result.stderr.splitlines()}
    needed = [
        path
        for folder in ("custom_decorators", "workflow_builder", "data", "reclab", "sql")
        for path in (REPO_ROOT / folder).rglob("*")
        if path.suffix in (".py", ".sql") and "__pycache__" not in path.parts
    ]
    assert any(p.suffix == ".sql" for p in needed)
    missing = [
        str(path.relative_to(REPO_ROOT))
        for path in needed
        if str(REPO_ROOT / "flows" / path.relative_to(REPO_ROOT)) not in listed
    ]
    assert not missing, f"not in the code package: {missing}"


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime")
def test_als_spark_engine_trains_in_the_flow(ml100k_dir) -> None:
    """``--models als --als-engine spark`` trains every ALS grid point with pyspark.ml."""
    from metaflow import Flow

    result = run_on_ml100k(
        ml100k_dir,
        "--models",
        "als",
        "--als-engine",
        "spark",
        "--bootstrap-samples",
        "20",
        "--max-workers",
        "1",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    point_client_at_session_datastore()
    board = Flow("TrainFlow").latest_successful_run.data.leaderboard
    assert set(board["family"]) == {"als"}
    assert all(json.loads(p)["engine"] == "spark" for p in board["params"])
    assert board["valid_ndcg_at_10"].between(0.02, 1).all()


def _card_content(run) -> tuple[str, str]:
    import base64
    import re

    from metaflow.cards import get_cards

    html = get_cards(run["join"].task, id="leaderboard")[0].get()
    payload = re.search(r'window.__MF_DATA__\[[^\]]+\] = "([A-Za-z0-9+/=]+)"', html).group(1)
    return html, base64.b64decode(payload).decode()


def test_card_reads_alone_and_renders_offline(run) -> None:
    html, content = _card_content(run)
    for section in (
        "NDCG@K and Recall@K, K = 1..50 (test window)",
        "Quality against fit time",
        "Coverage and popularity bias",
        "Recent history (last train items)",
        "Actually watched in the test window",
        "test_popular_share_at_10",
    ):
        assert section in content, section
    assert content.count('"type": "vegaChart"') >= 4
    # Sample users carry titles (MovieLens item metadata) and the hit marks.
    assert "(1977)" in content or "(1996)" in content or "(1997)" in content
    # No external scripts: Vega and the card's JavaScript are inlined in the HTML.
    import re

    assert not re.search(r"<script[^>]+src=", html)
    assert 'src="http' not in html


def _card_tables(content: str) -> list[dict]:
    found = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("type") == "table":
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(content))
    return found


def test_card_tables_are_whole(run) -> None:
    # Metaflow's Table.from_dataframe keeps 5 rows unless told otherwise: every candidate, every
    # family and every one of the k recommendations must be in the card.
    _, content = _card_content(run)
    tables = _card_tables(content)
    board = run.data.leaderboard
    leaderboard = tables[0]
    assert len(leaderboard["data"]) == len(board)
    id_column = leaderboard["columns"].index("candidate_id")
    assert {row[id_column] for row in leaderboard["data"]} == set(board["candidate_id"])
    bias = tables[1]
    assert len(bias["data"]) == board["family"].nunique()
    recommended = [t for t in tables if "rank" in t["columns"]]
    assert len(recommended) == 3
    assert all(len(t["data"]) == 10 for t in recommended)
    params = leaderboard["columns"].index("params")
    assert all(not str(row[params]).endswith("...") for row in leaderboard["data"])


def test_metric_curves_agree_with_the_leaderboard(run) -> None:
    curves = run.data.metric_curves
    board = run.data.leaderboard.set_index("candidate_id")
    assert set(curves["k"]) == set(range(1, 51))
    assert set(curves["candidate_id"]) == set(board.index)
    at_10 = curves[curves["k"] == 10]
    for row in at_10.itertuples():
        for metric in ("ndcg", "recall"):
            expected = board.loc[row.candidate_id, f"{row.window}_{metric}_at_10"]
            assert getattr(row, metric) == pytest.approx(expected, abs=1e-12, nan_ok=True)
    assert board["test_popular_share_at_10"].between(0, 1).all()


def test_batch_scores_hold_every_known_users_top_k(run) -> None:
    from reclab.batch_scoring import read_batch_scores

    frame = read_batch_scores(run.data.batch_scores_location)
    bundle = run.data.best_model
    assert run.data.batch_scores_rows == len(frame) == 10 * len(bundle.user_map)
    assert set(frame["user_id"]) == set(bundle.user_map.raw_ids.tolist())
    for user_id in (1, 196, 405):
        rows = frame[frame["user_id"] == user_id]
        expected = bundle.recommend(user_id, k=10)
        assert rows["rank"].tolist() == list(range(1, 11))
        assert rows["item_id"].tolist() == expected["item_id"].tolist()


def test_batch_scores_live_beside_the_run_in_its_datastore(run) -> None:
    """batch_score reads the run's datastore from its task metadata (public client API)."""
    from custom_decorators import task_datastore
    from reclab.batch_scoring import default_scores_location

    ds_type, ds_root = task_datastore(run["batch_score"].task)
    assert ds_type == "local" and ds_root.startswith(DATASTORE_ROOT)
    assert run.data.batch_scores_location == default_scores_location(
        ds_type, ds_root, "TrainFlow", run.id
    )
    assert run.data.batch_scores_location.startswith(DATASTORE_ROOT)
