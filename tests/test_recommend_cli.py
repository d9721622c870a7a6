"""flows/recommend.py run as a real script against the session's ML-100k run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test here runs the flow (or reads its run)

# Not `from tests.conftest import ...`: that imports conftest a second time under another name,
# which makes a new temporary Metaflow root and repoints os.environ away from the session's runs.
REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "flows" / "recommend.py"


def cli(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI with this test session's Metaflow settings (inherited environment)."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=os.environ["METAFLOW_DATASTORE_SYSROOT_LOCAL"],  # set by conftest
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def run_id(trained_run) -> str:
    return trained_run.pathspec


@pytest.fixture(scope="module")
def user(trained_run) -> int:
    """A user known to the model (the first of the id map)."""
    return trained_run.data.best_model.user_map.raw_ids[0].item()


def test_user_table_shows_ranks_ids_scores_and_titles(run_id, trained_run, user) -> None:
    expected = trained_run.data.best_model.recommend(user, k=3)
    result = cli("user", str(user), "--k", "3", "--run-id", run_id)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"user {user}: model by ")
    assert lines[1].split() == ["rank", "item_id", "score", "title"]
    for line, (_, row) in zip(lines[2:5], expected.iterrows(), strict=True):
        assert line.split()[:2] == [str(row["rank"]), str(row["item_id"])]
        assert line.endswith(row["title"])


def test_several_users_as_json(run_id, user) -> None:
    result = cli("user", str(user), "999999", "--k", "4", "--run-id", run_id, "--json")
    assert result.returncode == 0, result.stderr
    responses = json.loads(result.stdout)
    assert [r["user_id"] for r in responses] == [user, 999999]
    assert [r["cold_start"] for r in responses] == [False, True]
    assert all(len(r["items"]) == 4 for r in responses)


def test_new_user_with_ratings_and_rules(run_id) -> None:
    result = cli(
        "new-user",
        "--items",
        "50,172,181",
        "--ratings",
        "5,4,5",
        "--k",
        "5",
        "--exclude-top-popular",
        "10",
        "--include-items",
        "1682@2",
        "--filter",
        "item_genres=Sci-Fi,Adventure",
        "--run-id",
        run_id,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["strategy"] == "fold_in" and response["user_id"] is None
    items = response["items"]
    assert items[1]["item_id"] == 1682 and items[1]["forced"] is True
    for item in items:
        assert item["forced"] or {"Sci-Fi", "Adventure"} & set(item["item_genres"])
        assert item["item_id"] not in (50, 172, 181)
    assert len(response["rules_applied"]) == 3


def test_similar_items_table(run_id) -> None:
    result = cli("similar", "50", "--k", "10", "--run-id", run_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("items similar to 50: model by ")
    assert "Return of the Jedi" in result.stdout or "Empire Strikes Back" in result.stdout


def test_info_by_tag(trained_run) -> None:
    tag = f"best_model:{trained_run.data.best_model_name}"
    result = cli("info", "--tag", tag, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["family"] == trained_run.data.best_model_name
    assert info["capabilities"]["fold_in"] is not None


def test_family_option_serves_that_family_with_explanations(run_id, user) -> None:
    result = cli("user", str(user), "--k", "2", "--family", "sar", "--explain", "--run-id", run_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"user {user}: model by sar"
    assert "because: " in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["user", "abc"], "user id 'abc' is not an integer"),
        (["user", "196", "--k", "0"], "k must be an integer from 1 to 100"),
        (["user", "196", "--k", "many"], "invalid int value"),
        (["similar", "99999999"], "not in the model's catalogue"),
        (["new-user", "--items", "50,172", "--ratings", "5"], "one number per item"),
        (["new-user", "--items", "50", "--ratings", "five"], "is not a list of numbers"),
        (["user", "196", "--include-items", "1682"], "is not ITEM@POSITION"),
        (["user", "196", "--filter", "genre=Comedy"], "unknown metadata column 'genre'"),
        (["user", "196", "--filter", "item_genres"], "is not column=value"),
        (["user", "196", "--exclude-top-popular", "-3"], "integer >= 0"),
        (["info", "--run-id", "987654321"], "not found"),
        (["info", "--tag", "no-such-tag"], "no successful TrainFlow run has the tag"),
        (["info", "--family", "nope"], "has no model of that family"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_no_traceback(run_id, args, message) -> None:
    if "--run-id" not in args and "--tag" not in args and args[0] != "frobnicate":
        args = [*args, "--run-id", run_id]
    result = cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
