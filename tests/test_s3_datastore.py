"""TrainFlow on Metaflow's S3 datastore (a local moto server), read back with the client.

The run uses ``--datastore=s3``; ``@magicdir``, the ``leaderboard`` and the ``best_model``
round-trip through S3 and are read back by the Metaflow client in a separate process with the
same environment (Metaflow reads its settings once, at import, so this pytest process, whose
client points at the local datastore, cannot be repointed at S3 reliably).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import DATASTORE_ROOT, REPO_ROOT
from tests.test_aws_batch import BUCKET, moto_aws, run_flow_on  # noqa: F401 -- fixture

pytestmark = pytest.mark.slow  # every test here runs the flow (or reads its run)

READER = r"""
import json, sys, tempfile
from pathlib import Path
from metaflow import Flow, metadata, namespace
from custom_decorators import artifact_name, extract_archive

metadata("local@" + sys.argv[1])
namespace(None)
run = Flow("TrainFlow").latest_successful_run
task = run["build_workflow"].task
out = Path(tempfile.mkdtemp())
extract_archive(task[artifact_name("data")].data, out)
board = run.data.leaderboard
recs = run.data.best_model.recommend(196, k=5)
from metaflow import S3
with S3(s3root=run.data.batch_scores_location) as s3:
    score_keys = sorted(obj.key for obj in s3.list_recursive())
print(json.dumps({
    "batch_scores_location": run.data.batch_scores_location,
    "batch_scores_rows": run.data.batch_scores_rows,
    "batch_score_keys": score_keys,
    "ds_type": task.metadata_dict.get("ds-type"),
    "ds_root": task.metadata_dict.get("ds-root"),
    "magicdir_files": sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet")),
    "families": sorted(board["family"]),
    "best_model_name": run.data.best_model_name,
    "top_family": board.iloc[0]["family"],
    "recommended": len(recs),
}))
"""


@pytest.fixture(scope="module")
def s3_run(moto_aws, ml100k_dir):  # noqa: F811 -- pytest fixture injection
    result = run_flow_on(
        moto_aws,
        "--datastore=s3",
        "run",
        "--data-dir",
        str(ml100k_dir.parent),
        "--models",
        "popularity,random",
        "--bootstrap-samples",
        "50",
        "--max-workers",
        "4",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    read = subprocess.run(
        [sys.executable, "-c", READER, DATASTORE_ROOT],
        cwd=REPO_ROOT,
        env=moto_aws,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert read.returncode == 0, read.stderr[-6000:]
    return json.loads(read.stdout.strip().splitlines()[-1])


def test_artifacts_live_in_s3(s3_run) -> None:
    assert s3_run["ds_type"] == "s3"
    assert s3_run["ds_root"] == f"s3://{BUCKET}/metaflow"


def test_magicdir_round_trips_through_s3(s3_run) -> None:
    assert any(name.startswith("split/") for name in s3_run["magicdir_files"])
    assert any(name.startswith("encoded/") for name in s3_run["magicdir_files"])


def test_leaderboard_and_best_model_round_trip(s3_run) -> None:
    assert s3_run["families"] == ["popularity", "random"]
    assert s3_run["best_model_name"] == s3_run["top_family"] == "popularity"
    assert s3_run["recommended"] == 5


def test_batch_scores_are_uploaded_beside_the_run(s3_run) -> None:
    assert s3_run["batch_scores_location"].startswith(f"s3://{BUCKET}/metaflow/TrainFlow/")
    assert s3_run["batch_scores_rows"] > 0
    assert s3_run["batch_score_keys"] and all(
        key.startswith("bucket=") and key.endswith(".parquet") for key in s3_run["batch_score_keys"]
    )
