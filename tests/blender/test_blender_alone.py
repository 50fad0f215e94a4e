"""Blender alone is enough: the platform zip, installed by Blender's own extension installer into a fresh
profile with nothing configured, generates gestures with Blender's own Python and the bundled wheels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SPEECH = ROOT / "assets" / "demo_speech.wav"


@pytest.fixture(scope="module")
def alone(addon_zip, tmp_path_factory) -> dict:
    """Run the user's first session in a new Blender process (fresh profile, no EXPGEST_BACKEND_PYTHON)."""
    folder = tmp_path_factory.mktemp("alone")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPGEST_")}
    env["BLENDER_USER_RESOURCES"] = str(folder / "profile")
    out = folder / "result.json"
    result = subprocess.run([sys.executable, str(HERE / "blender_alone_run.py"), str(addon_zip), str(SPEECH),
                             str(out)], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and out.is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8"))


def test_the_platform_zip_bundles_the_procedural_engines_wheels(addon_zip):
    with zipfile.ZipFile(addon_zip) as archive:
        names = archive.namelist()
        manifest = archive.read("blender_manifest.toml").decode()
    wheels = sorted(Path(n).name.split("-")[0] for n in names if n.startswith("wheels/") and n.endswith(".whl"))
    assert wheels == ["cffi", "pycparser", "scipy", "soundfile"]
    assert all(n.endswith(("none-any.whl", "x86_64.whl")) for n in names if n.startswith("wheels/"))
    assert 'platforms = ["linux-x64"]' in manifest and "LICENSE" in names


def test_generate_with_nothing_configured_uses_blenders_python_and_the_wheels(alone):
    assert alone["install"] == ["FINISHED"]
    assert alone["source"] == "blender" and alone["python"] == alone["own_python"]
    assert {"scipy", "soundfile.py", "cffi"} <= set(alone["bundled"])
    assert alone["probe"][0] is None, alone["probe"]
    assert alone["add_character"] == ["FINISHED"] and alone["mesh_vertices"] > 500  # the segment body
    assert alone["generate"] == ["FINISHED"], alone["report"]
    assert alone["keys"] > 10_000, alone
    assert alone["seconds_to_keys"] < 60  # the benchmark (bench/bench_first_keys.py) reports the real figure


def test_without_the_bundled_wheels_the_same_python_cannot_run_the_backend(alone):
    """Proof that nothing leaked from the test environment: the Blender venv lacks scipy and soundfile."""
    code, last = alone["without_wheels"]
    assert code != 0 and "No module named" in last, last
