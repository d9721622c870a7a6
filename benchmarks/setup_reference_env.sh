#!/usr/bin/env bash
# Creates (or updates) benchmarks/.venv-reference with Microsoft Recommenders, for the SAR
# reference run (benchmarks/reference_sar.py). It cannot live in the repository's .venv: the
# library's declared dependencies (cornac, numba, transformers, pandas>2 ...) clash with the
# Merlin / TensorFlow pins there.
#
# Only what SARSingleNode imports is installed: recommenders itself with --no-deps (its
# declared dependencies are the whole library's, notebooks and deep learning included), plus
# numpy<2 (1.2.1 uses np.NaN, gone in NumPy 2), pandas>2,<3 (its declared range), scipy and
# pyarrow<19 (newer wheels need NumPy 2; it reads and writes the parquet files the benchmark
# exchanges with the library).
# Safe to run again: it does nothing when this file has not changed since the last run.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3.11}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  PYTHON=python3
fi
VENV=.venv-reference
stamp="$VENV/.setup-stamp"
want=$(sha256sum setup_reference_env.sh | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup_reference_env.sh: $VENV is up to date"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
  "numpy>=1.24,<2" "pandas>2.0,<3" "scipy>=1.10" "pyarrow>=14,<19"
"$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off --no-deps \
  "recommenders==1.2.1"
"$VENV/bin/python" -c "import pyarrow; from recommenders.models.sar.sar_singlenode import SARSingleNode; print('SARSingleNode ok')"
echo "$want" > "$stamp"
echo "setup_reference_env.sh: $VENV ready"
