"""Helpers for the real-Blender character tests (bpy): a fresh scene and a backend-built character file.

Kept out of ``conftest.py`` (owned by the add-on tests): imported by ``test_rig.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

if "bpy" not in sys.modules:  # one user-resources folder per process, before bpy starts (notes/blender.md 7)
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(
        prefix=f"bl_user_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_"))

import bpy  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def clean_scene() -> bpy.types.Scene:
    """An empty scene (factory settings, add-ons kept)."""
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    return bpy.context.scene


def backend_python() -> str:
    """The backend interpreter (numpy 2 + mannequin-x): $EXPGEST_BACKEND_PYTHON or the repo's venv."""
    python = os.environ.get("EXPGEST_BACKEND_PYTHON") or str(ROOT / ".venv" / "backend" / "bin" / "python")
    if not Path(python).exists():
        pytest.fail(f"backend Python {python} not found: run scripts/setup.sh or set EXPGEST_BACKEND_PYTHON")
    return python


def build_character_file(path: Path, *extra: str) -> Path:
    """Run ``python -m backend character -o path`` (the real backend, as the add-on does)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONHOME", None)
    result = subprocess.run([backend_python(), "-m", "backend", "character", "-o", str(path), *extra],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return path
