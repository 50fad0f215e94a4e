#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh Debian machine: system packages, then two virtual
# environments, because Blender's `bpy` pins numpy<2 while the backend (torch, mannequin-x) wants
# numpy>=2 -- exactly as in production, where Blender runs its own Python and talks to the backend
# process.
#   .venv/backend  the backend: torch (CPU), transformers, scipy, soundfile, mannequin-x, ray, test tools
#   .venv/blender  bpy==5.0.1 (real Blender as a Python module) and pytest
# EXPGEST_VENVS overrides the folder that holds both (default: <repo>/.venv).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENVS=${EXPGEST_VENVS:-$ROOT/.venv}
PY=${PYTHON:-python3.11}
log() { printf '[setup] %s\n' "$*" >&2; }

# A .venv left behind by another machine or checkout: a link whose target is gone, or a file, is removed
# (a link to an existing folder is the user's choice and is kept).
if [ -L "$VENVS" ] && [ ! -e "$VENVS" ]; then
    log "removing the dangling link $VENVS -> $(readlink "$VENVS")"; rm -f "$VENVS"
elif [ -e "$VENVS" ] && [ ! -d "$VENVS" ]; then
    log "removing $VENVS: it is a file, not a folder of environments"; rm -f "$VENVS"
fi

APT_PACKAGES=(espeak-ng sox ffmpeg blender xvfb xdotool imagemagick x11-utils python3-numpy)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    log "installing system packages: ${missing[*]}"
    $SUDO apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

make_venv() {  # make_venv NAME STAMP-CONTENT PIP-ARGS...
    local name=$1 stamp=$2; shift 2
    local dir=$VENVS/$name
    # Up to date only if the stamp matches and the interpreter still runs (a venv copied from another
    # machine, or whose base Python was removed, is rebuilt).
    if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ] && "$dir/bin/python" -c "" 2>/dev/null; then
        return
    fi
    log "creating $dir"
    rm -rf "$dir"; mkdir -p "$VENVS"
    "$PY" -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "$@" >&2
    echo "$stamp" > "$dir/.stamp"
}

# torch first from its CPU build, so that nothing later pulls the multi-GB CUDA build.
BACKEND_STAMP="v1 $(sha1sum "$ROOT/pyproject.toml" | cut -c1-12)"
make_venv backend "v1 torch==2.13.0" torch==2.13.0
if [ ! -f "$VENVS/backend/.deps" ] || [ "$(cat "$VENVS/backend/.deps")" != "$BACKEND_STAMP" ]; then
    "$VENVS/backend/bin/pip" install -q --disable-pip-version-check -e "$ROOT[expgest,mannequin,cluster,dev]" >&2
    echo "$BACKEND_STAMP" > "$VENVS/backend/.deps"
fi
make_venv blender "v1 bpy==5.0.1" bpy==5.0.1 pytest pytest-timeout
# A second Blender for the test matrix (4.5 LTS: legacy Action API proxies, renamed Sequencer types).
# bpy 4.2.x from PyPI is built without Audaspace (no sound strips), so 4.2 is covered by the code paths only.
make_venv blender45 "v1 bpy==4.5.15" bpy==4.5.15 pytest pytest-timeout
log "ready: $VENVS/backend (backend), $VENVS/blender (bpy 5.0.1), $VENVS/blender45 (bpy 4.5.15)"
