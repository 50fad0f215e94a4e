"""The built add-on zip (the one Blender installs) holds no test code, no demo renderer and no demo command."""

from __future__ import annotations

import zipfile
from pathlib import PurePosixPath

import pytest

pytestmark = pytest.mark.blender


def test_the_built_zip_holds_no_test_code(addon_zip):
    with zipfile.ZipFile(addon_zip) as archive:
        names = archive.namelist()
        sources = {name: archive.read(name).decode("utf-8") for name in names if name.endswith(".py")}
    assert "backend/handlers.py" in names and "blender_manifest.toml" in names
    assert "backend/commands/demo.py" not in names  # repository-only: it builds this zip and runs scripts/
    files = [PurePosixPath(name) for name in names]
    assert not [f for f in files if "tests" in f.parts or f.name.startswith("test_")
                or f.name in ("testing.py", "conftest.py", "preview.py")]
    assert not [name for name, text in sources.items()
                if "_test_" in text or "EXPGEST_TEST_ENGINES" in text or "engines.testing" in text]
