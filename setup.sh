#!/usr/bin/env bash
# Creates (or updates) the virtual environment at .venv with the pinned stack.
# Safe to run again: it does nothing when the requirement files have not changed.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3.11}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  PYTHON=python3
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "setup.sh: Python 3.11 is required (the Merlin/TensorFlow 2.12 stack has no wheels for" \
       "$("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

stamp=.venv/.setup-stamp
want=$(cat requirements.txt requirements-overrides.txt setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup.sh: .venv is up to date"
  exit 0
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# merlin-models ships only as an sdist whose metadata a recent pip refuses (a git URL in an
# extra); pip 23.2.1 installs it.
.venv/bin/python -m pip install --quiet --disable-pip-version-check "pip==23.2.1"
.venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -r requirements.txt
.venv/bin/python -m pip install --disable-pip-version-check --progress-bar off --no-deps \
  -r requirements-overrides.txt
echo "$want" > "$stamp"
echo "setup.sh: .venv ready"
