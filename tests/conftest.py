"""Test-wide settings: Metaflow runs headless and isolated, and the data comes from ../shared.

Metaflow reads its configuration from the environment when it is first imported, so the
variables are set here, at import time, before any test module imports metaflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RECLAB_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")
ML100K_DIR = SHARED_DATA / "ml-100k"

# Test modules import helpers with ``from tests.conftest import ...``, which executes this file a
# second time under another module name: reuse the first root so every run and every client
# call of the session sees the same datastore.
_METAFLOW_ROOT = Path(
    os.environ.get("RECLAB_TESTS_METAFLOW_ROOT")
    or tempfile.mkdtemp(prefix="reclab-tests-metaflow-")
)
os.environ["RECLAB_TESTS_METAFLOW_ROOT"] = str(_METAFLOW_ROOT)
for _name in [n for n in os.environ if n.startswith("METAFLOW_")]:
    del os.environ[_name]
os.environ.update(
    {
        "USERNAME": os.environ.get("USERNAME", "reclab-tests"),
        "METAFLOW_HOME": str(_METAFLOW_ROOT / "home"),
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(_METAFLOW_ROOT / "datastore"),
        "METAFLOW_DEFAULT_DATASTORE": "local",
        "METAFLOW_DEFAULT_METADATA": "local",
        # A stray AWS setting must never make a test wait on a metadata endpoint.
        "AWS_EC2_METADATA_DISABLED": "true",
        "MAGICDIR_ROOT": str(_METAFLOW_ROOT / "magicdir"),
        # Runs of one session share a datastore: with promotion on, the first successful run
        # would become the production run and every later run would train its recipe as an
        # extra 'incumbent' candidate. Flow runs default to --promotion never here (Metaflow
        # reads METAFLOW_RUN_<OPTION>); the production tests pass --promotion themselves.
        "METAFLOW_RUN_PROMOTION": "never",
    }
)
for _dir in ("METAFLOW_HOME", "METAFLOW_DATASTORE_SYSROOT_LOCAL"):
    Path(os.environ[_dir]).mkdir(parents=True, exist_ok=True)


FLOW = REPO_ROOT / "flows" / "train.py"
# Flows run with the test datastore root as their working directory: Metaflow writes cards under
# the working directory's .metaflow but the client reads them under the datastore root.
DATASTORE_ROOT = os.environ["METAFLOW_DATASTORE_SYSROOT_LOCAL"]


def run_flow(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run flows/train.py with this test session's isolated Metaflow settings."""
    return subprocess.run(
        [sys.executable, str(FLOW), "--no-pylint", *args],
        cwd=DATASTORE_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """The official MovieLens-100k files (../shared/data/ml-100k or $RECLAB_DATA_DIR)."""
    if not (ML100K_DIR / "u.data").exists():
        pytest.fail(f"MovieLens-100k not found at {ML100K_DIR}; set RECLAB_DATA_DIR")
    return ML100K_DIR


@pytest.fixture(scope="session")
def metaflow_root() -> Path:
    """Where this test session's Metaflow datastore and metadata live."""
    return _METAFLOW_ROOT


def point_client_at_session_datastore() -> None:
    """Point the Metaflow client back at this session's datastore.

    A ``Runner`` call repoints the client's global metadata to the datastore of the run it made
    (the magicdir tests use their own), after which Run objects of the session's runs no longer
    resolve. Call this before reading them.
    """
    from metaflow import metadata, namespace

    metadata(f"local@{DATASTORE_ROOT}")
    namespace(None)


@pytest.fixture(scope="session")
def trained_run_ids(ml100k_dir) -> list[str]:
    """Two runs of the default TrainFlow (every family) on ML-100k with the same seed.

    Session-scoped: the end-to-end, serving and report tests all read these runs back through
    the Metaflow client instead of training again. Returns their pathspecs.
    """
    from metaflow import Flow

    pathspecs = []
    for _ in range(2):
        result = run_flow(
            "run",
            "--data-dir",
            str(ml100k_dir.parent),
            "--bootstrap-samples",
            "200",
            "--seed",
            "42",
            "--max-workers",
            "4",
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
        point_client_at_session_datastore()
        pathspecs.append(Flow("TrainFlow").latest_successful_run.pathspec)
    return pathspecs


@pytest.fixture(scope="module")
def trained_runs(trained_run_ids):
    """The two session runs as Metaflow client Runs, resolved in this session's datastore."""
    from metaflow import Run

    point_client_at_session_datastore()
    return [Run(pathspec) for pathspec in trained_run_ids]


@pytest.fixture(scope="module")
def trained_run(trained_runs):
    """The latest successful default TrainFlow run on ML-100k (a Metaflow client Run)."""
    return trained_runs[-1]
