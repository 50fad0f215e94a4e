#!/usr/bin/env bash
# Set up (idempotent) and run every test: the backend suite in the backend venv, then the real-Blender
# suite (bpy 5.0.1, and Debian's blender under Xvfb for the on-screen path) in the Blender venv.
# ruff and mypy run first (scripts/lint.sh). Fails if the lint fails or a suite fails or collects no tests.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENVS=${EXPGEST_VENVS:-$ROOT/.venv}
bash "$ROOT/scripts/setup.sh" || exit 1
cd "$ROOT"
export EXPGEST_BACKEND_PYTHON=${EXPGEST_BACKEND_PYTHON:-$VENVS/backend/bin/python}
export PYTHONDONTWRITEBYTECODE=1
lstatus=0
bash "$ROOT/scripts/lint.sh" || lstatus=$?
status=0
"$VENVS/backend/bin/python" -m pytest -q -p no:cacheprovider tests/backend "$@" || status=$?
[ $status -eq 0 ] || echo "backend tests failed (exit $status)" >&2
bstatus=0
"$VENVS/blender/bin/python" -m pytest -q -p no:cacheprovider tests/blender "$@" || bstatus=$?
[ $bstatus -eq 0 ] || echo "Blender tests failed (exit $bstatus)" >&2
# The same add-on tests on Blender 4.5 LTS (the GUI test runs Debian's blender, the demo is version-independent;
# the full engine install, about a minute of pip, is the same code on every Blender and runs once, on 5.0).
b45status=0
"$VENVS/blender45/bin/python" -m pytest -q -p no:cacheprovider tests/blender \
    --deselect tests/blender/test_gui.py --deselect tests/blender/test_demo.py \
    --deselect tests/blender/test_engine_install.py::test_install_from_a_wheel_folder_then_generate_with_the_expgest_engine \
    "$@" || b45status=$?
[ $b45status -eq 0 ] || echo "Blender 4.5 tests failed (exit $b45status)" >&2
# pytest exit 5 means no tests were collected: that is a failure here.
[ $lstatus -eq 0 ] && [ $status -eq 0 ] && [ $bstatus -eq 0 ] && [ $b45status -eq 0 ]
