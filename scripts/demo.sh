#!/usr/bin/env bash
# Set up (idempotent), then turn the bundled speech into a gesturing SMPL-X character:
#   out/demo/demo.blend   the animated character, the voice on the timeline
#   out/demo/preview.mp4  a rendered preview (PNG frames if no encoder is available)
# Extra arguments go to `python -m backend demo` (e.g. --emotion anger --audio my.wav --out DIR).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENVS=${EXPGEST_VENVS:-$ROOT/.venv}
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export EXPGEST_BLENDER_PYTHON=${EXPGEST_BLENDER_PYTHON:-$VENVS/blender/bin/python}
exec "$VENVS/backend/bin/python" -m backend demo "$@"
