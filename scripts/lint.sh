#!/usr/bin/env bash
# Static checks, run by scripts/test.sh before the tests (config in pyproject.toml):
#   ruff: style, imports, bug patterns and a complexity limit (C901, max 20) over the whole repository;
#   mypy: types of backend/ and models/ (the add-on is checked by the real-Blender tests: bpy has no stubs).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENVS=${EXPGEST_VENVS:-$ROOT/.venv}
cd "$ROOT"
status=0
"$VENVS/backend/bin/python" -m ruff check . || status=1
"$VENVS/backend/bin/python" -m mypy || status=1
[ $status -eq 0 ] || echo "lint failed: fix the findings above (scripts/lint.sh)" >&2
exit $status
