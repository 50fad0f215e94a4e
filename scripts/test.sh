#!/usr/bin/env bash
# Set up (idempotent) and run every test: the backend suite in the backend venv, then the real-Blender
# suite (bpy 5.0.1, and Debian's blender under Xvfb for the on-screen path) in the Blender venv.
# Fails if either suite fails or collects no tests.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENVS=${EXPGEST_VENVS:-$ROOT/.venv}
bash "$ROOT/scripts/setup.sh" || exit 1
cd "$ROOT"
export EXPGEST_BACKEND_PYTHON=${EXPGEST_BACKEND_PYTHON:-$VENVS/backend/bin/python}
export PYTHONDONTWRITEBYTECODE=1
status=0
"$VENVS/backend/bin/python" -m pytest -q -p no:cacheprovider tests/backend "$@" || status=$?
[ $status -eq 0 ] || echo "backend tests failed (exit $status)" >&2
bstatus=0
"$VENVS/blender/bin/python" -m pytest -q -p no:cacheprovider tests/blender "$@" || bstatus=$?
[ $bstatus -eq 0 ] || echo "Blender tests failed (exit $bstatus)" >&2
# pytest exit 5 means no tests were collected: that is a failure here.
[ $status -eq 0 ] && [ $bstatus -eq 0 ]
