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
    assert alone["check_backend"] == ["FINISHED"]
    assert "Blender's own Python" in alone["check_report"] and "ExpGest not installed" in alone["check_report"]
    assert alone["add_character"] == ["FINISHED"] and alone["mesh_vertices"] > 500  # the segment body
    assert alone["generate"] == ["FINISHED"], alone["report"]
    assert alone["keys"] > 2_000, alone  # reduced Bezier keys (the default) on 55 bones
    assert alone["seconds_to_keys"] < 60  # the benchmark (bench/bench_first_keys.py) reports the real figure


def test_without_the_bundled_wheels_the_same_python_cannot_run_the_backend(alone):
    """Proof that nothing leaked from the test environment: the Blender venv lacks scipy and soundfile."""
    code, last = alone["without_wheels"]
    assert code != 0 and "No module named" in last, last


def test_every_platform_zip_carries_only_its_own_wheels(tmp_path):
    """`build_addon.py --platform all`: Blender's `build --split-platforms` and `validate` on each zip."""
    done = subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--platform", "all", "--output-dir",
                           str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    expected = {"linux_x64": "manylinux", "windows_x64": "win_amd64", "macos_x64": "x86_64",
                "macos_arm64": "arm64"}
    zips = {p.name.removeprefix("expgest-").split("-", 1)[1].removesuffix(".zip"): p for p in tmp_path.glob("*.zip")}
    assert sorted(zips) == sorted(expected)
    for platform_name, archive in zips.items():
        with zipfile.ZipFile(archive) as opened:
            wheels = [Path(n).name for n in opened.namelist() if n.startswith("wheels/")]
            manifest = opened.read("blender_manifest.toml").decode()
        assert len(wheels) == 4, (platform_name, wheels)
        binary = [w for w in wheels if not w.endswith("-none-any.whl")]
        assert binary and all(expected[platform_name] in w for w in binary), (platform_name, wheels)
        assert f'platforms = ["{platform_name.replace("_", "-")}"]' in manifest
