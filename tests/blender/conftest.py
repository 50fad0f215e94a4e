"""Set-up for real-Blender tests (run with the Blender venv: bpy from PyPI, numpy 1.26).

Blender's user resources (preferences, extensions, caches) go to a fresh temporary folder, set before anything
imports ``bpy``, so tests never touch ``~/.config/blender``. The repository root is put first on sys.path so the
worktree's ``backend`` and ``blender_addon`` are imported (not an installed copy).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if "bpy" not in sys.modules:
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="expgest-blender-user-")
    atexit.register(shutil.rmtree, os.environ["BLENDER_USER_RESOURCES"], True)
