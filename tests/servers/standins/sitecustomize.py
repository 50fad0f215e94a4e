"""Test-only stand-ins for backend modules other engineers are still writing (audio, resample, procedural).

Put this folder on PYTHONPATH: Python imports ``sitecustomize`` at start-up, which installs a finder that
serves ``_standin_modules.<name>`` for ``backend.audio``, ``backend.motion.resample`` and
``backend.engines.procedural`` only while the real module file does not exist. Once the real modules are
merged this does nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[3]
_STANDINS = {
    "backend.audio": ("backend/audio.py", "_standin_audio"),
    "backend.motion.resample": ("backend/motion/resample.py", "_standin_resample"),
    "backend.engines.procedural": ("backend/engines/procedural.py", "_standin_procedural"),
}


class _StandinFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        entry = _STANDINS.get(name)
        if entry is None or (_ROOT / entry[0]).exists():
            return None
        location = Path(__file__).with_name(entry[1] + ".py")
        return importlib.util.spec_from_file_location(name, location)


sys.meta_path.append(_StandinFinder())
