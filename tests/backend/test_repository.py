"""The repository itself: what git tracks must set up on any machine from a fresh clone."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tracked_links() -> list[tuple[str, str]]:
    """(path, target) of every symbolic link git tracks (mode 120000), read from git itself."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(["git", "ls-files", "-s", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    links = []
    for entry in listing.decode("utf-8").split("\0"):
        if not entry.startswith("120000 "):
            continue
        meta, path = entry.split("\t", 1)
        blob = meta.split()[1]
        target = subprocess.run(["git", "cat-file", "blob", blob], cwd=ROOT, capture_output=True,
                                check=True).stdout.decode("utf-8")
        links.append((path, target))
    return links


def test_no_tracked_link_points_outside_the_repository() -> None:
    """A tracked link to one machine's folder (the old `.venv -> /work/venvs`) breaks every other clone."""
    outside = []
    for path, target in _tracked_links():
        if os.path.isabs(target):
            outside.append(f"{path} -> {target} (absolute)")
            continue
        resolved = os.path.normpath(os.path.join(ROOT, os.path.dirname(path), target))
        if os.path.commonpath([resolved, str(ROOT)]) != str(ROOT):
            outside.append(f"{path} -> {target} (leaves the repository)")
    assert not outside, "tracked symbolic links that point outside the repository: " + "; ".join(outside)


def test_venv_is_ignored_as_folder_and_as_link() -> None:
    """`.venv` must never be tracked again, whether a folder or a link (`.venv/` alone misses a link)."""
    for probe in (".venv",):
        result = subprocess.run(["git", "check-ignore", "-q", "--no-index", probe], cwd=ROOT)
        assert result.returncode == 0, f"{probe} is not ignored by .gitignore"


def test_the_engine_installer_installs_what_pyproject_declares():
    # The installer runs in Blender, where pyproject.toml is not shipped, so it keeps its own list: it must
    # stay the backend's dependencies plus the expgest extra (torch is chosen per platform by the installer).
    import importlib.util
    import sys
    import tomllib

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("engine_install", root / "blender_addon" / "engine_install.py")
    assert spec is not None and spec.loader is not None
    installer = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = installer  # its dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(installer)
    finally:
        del sys.modules[spec.name]
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert list(installer.BASE_PACKAGES) == project["dependencies"]
    extra = [requirement for requirement in project["optional-dependencies"]["expgest"]
             if not requirement.startswith("torch")]
    assert list(installer.ENGINE_PACKAGES) == extra
