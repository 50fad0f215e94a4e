"""The preferences page on screen: Debian's blender 3.4 under Xvfb draws it without a Python error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLENDER = shutil.which("blender") or "/usr/bin/blender"

pytestmark = [
    pytest.mark.gui,
    pytest.mark.skipif(not (os.path.isfile(BLENDER) and shutil.which("xvfb-run")),
                       reason="needs Debian's blender and xvfb-run"),
]


def test_the_preferences_page_draws_the_engine_install_and_the_models_report(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--platform", "none", "--legacy",
                            "--output-dir", str(dist)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (zip_path,) = dist.glob("*-legacy.zip")
    out = ROOT / "artifacts" / "gui_preferences"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, BLENDER_USER_SCRIPTS=tempfile.mkdtemp(), BLENDER_USER_CONFIG=tempfile.mkdtemp())
    run = subprocess.run(["timeout", "120", "xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", BLENDER,
                          "--factory-startup", "--python", str(ROOT / "tests" / "blender" / "gui_preferences.py"),
                          "--", str(zip_path), str(out)], capture_output=True, text=True, env=env)
    result_file = out / "preferences.json"
    assert result_file.is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(result_file.read_text())
    assert result["ok"], result
    assert result["check_models"] == ["FINISHED"]
    assert Path(result["shot"]).stat().st_size > 20_000
    assert "Traceback" not in run.stderr and "Error" not in run.stderr.replace("EGL Error", ""), run.stderr[-3000:]
