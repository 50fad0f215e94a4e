"""Install ExpGest Engine: a managed environment in the extension's user folder (here a temporary Blender
profile), from a local folder of wheels; Cancel, a failure or no network leave nothing half-installed."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_helpers import MODULE, add_character, add_sound

pytestmark = pytest.mark.blender
ROOT = Path(__file__).resolve().parents[2]
ENGINE_REQUIREMENTS = ("torch==2.13.0", "numpy>=1.26", "scipy>=1.11", "soundfile>=0.12", "transformers>=4.40",
                       "safetensors>=0.4")


@pytest.fixture(scope="module")
def wheel_dir(backend_python, tmp_path_factory) -> Path:
    """A studio's offline wheel folder, made from the pip cache with the backend environment's pip."""
    folder = tmp_path_factory.mktemp("wheels")
    done = subprocess.run([backend_python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                           "--dest", str(folder), *ENGINE_REQUIREMENTS], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder


@pytest.fixture
def prefs(addon):
    preferences = importlib.import_module(MODULE + ".preferences")
    stored = bpy.context.preferences.addons[MODULE].preferences
    yield preferences, stored
    stored.engine_wheels = ""
    preferences.INSTALL.clear()
    preferences.engine_install.remove(preferences.engine_root())


def _engine_files(preferences) -> list[str]:
    root = preferences.engine_root()
    return sorted(p.name for p in root.iterdir() if p.name.startswith("engine"))


def test_install_from_a_wheel_folder_then_generate_with_the_expgest_engine(prefs, wheel_dir, clean_scene,
                                                                          short_speech, monkeypatch, tmp_path,
                                                                          backend_python):
    preferences, stored = prefs
    operators = importlib.import_module(MODULE + ".operators")
    stored.engine_wheels = str(wheel_dir)
    assert bpy.ops.expgest.install_engine() == {"FINISHED"}
    assert _engine_files(preferences) == ["engine"]  # no partial folder left
    monkeypatch.delenv("EXPGEST_BACKEND_PYTHON")
    operators.shutdown_backend()
    settings = preferences.resolve(bpy.context)
    assert settings.python_source == "engine"
    assert Path(settings.python).is_relative_to(preferences.engine_root())
    jobs = importlib.import_module(MODULE + ".jobs")
    assert jobs.probe_interpreter(settings.python) == (None, True)  # torch and transformers are there

    # The diffusion engine runs through the new environment on tiny weights built from the real classes.
    weights = tmp_path / "weights"
    made = subprocess.run([backend_python, "-c", "import sys; sys.path.insert(0, 'tests/backend'); "
                           "import tiny_weights, pathlib; tiny_weights.make_weights_folder("
                           f"pathlib.Path({str(weights)!r}), ('audio_only',))"], cwd=ROOT, capture_output=True,
                          text=True)
    assert made.returncode == 0, made.stderr[-2000:]
    monkeypatch.setenv("EXPGEST_MODELS", str(weights))
    obj = add_character()
    obj.expgest.engine, obj.expgest.quality = "expgest", "DRAFT"
    add_sound(clean_scene, short_speech)
    try:
        assert bpy.ops.expgest.generate() == {"FINISHED"}, clean_scene.expgest.last_report
    finally:
        operators.shutdown_backend()
    (track,) = obj.animation_data.nla_tracks
    assert track.strips[0].action is not None
    assert bpy.ops.expgest.remove_engine() == {"FINISHED"}
    assert _engine_files(preferences) == [] and preferences.resolve(bpy.context).python_source != "engine"


def test_cancel_mid_install_leaves_no_environment(prefs, wheel_dir):
    preferences, stored = prefs
    stored.engine_wheels = str(wheel_dir)
    installer = preferences.start_engine_install(bpy.context)
    deadline = time.monotonic() + 120
    while installer.poll() == "running" and installer.step < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert installer.state == "running" and installer.step == 1  # installing PyTorch
    time.sleep(1.0)
    installer.cancel()
    assert installer.state == "cancelled" and "nothing was installed" in installer.status
    assert _engine_files(preferences) == []
    assert preferences.resolve(bpy.context).python_source != "engine"


def test_a_broken_wheel_fails_clearly_and_changes_nothing(prefs, tmp_path):
    preferences, stored = prefs
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"not a zip file" * 100)
    stored.engine_wheels = str(broken)
    with pytest.raises(RuntimeError, match="Installing PyTorch failed"):
        bpy.ops.expgest.install_engine()
    installer = preferences.INSTALL["installer"]
    assert installer.state == "failed" and "Nothing was installed" in installer.status
    assert str(installer.log_path) in installer.status and installer.log_path.is_file()
    assert _engine_files(preferences) == []


def test_no_network_is_named(prefs, monkeypatch):
    preferences, stored = prefs
    # pip's own configuration of this machine points at local mirrors: replace it by an index nobody serves.
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "1")  # pip names the refused connection while retrying
    monkeypatch.setenv("PIP_TIMEOUT", "3")
    stored.engine_variant = "default"  # PyPI's build: no second index to reach
    installer = preferences.start_engine_install(bpy.context)
    while installer.poll() == "running":
        time.sleep(0.2)
    assert installer.state == "failed", installer.status
    assert "no network connection" in installer.status and "Nothing was installed" in installer.status
    assert _engine_files(preferences) == []


def test_a_missing_offline_folder_is_named(prefs, tmp_path):
    preferences, stored = prefs
    stored.engine_wheels = str(tmp_path / "nowhere")
    installer = preferences.start_engine_install(bpy.context)
    assert installer.state == "failed" and "does not exist" in installer.status
    assert _engine_files(preferences) == []


def test_numpy_of_blender_is_untouched():
    """The engine environment is separate: Blender's own numpy stays the one Blender ships."""
    assert np.__version__.startswith("1.") and "engine" not in np.__file__ and sys.executable


def test_check_models_folder_lists_what_is_missing_and_where_it_comes_from(prefs, tmp_path, backend_python):
    preferences, _ = prefs
    lines = preferences.check_models_folder(backend_python, str(tmp_path))
    text = "\n".join(line for line, _ in lines)
    assert "audio_only: " in text and "missing" in text and "model.pt" in text
    assert any(icon == "ERROR" for _, icon in lines)
    (line, icon), = preferences.check_models_folder(backend_python, str(tmp_path / "nowhere"))
    assert icon == "ERROR" and "does not exist" in line
    assert "No models folder is set" in preferences.check_models_folder(backend_python, "")[0][0]
