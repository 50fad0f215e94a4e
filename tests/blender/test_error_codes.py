"""Errors reach the panel with their type and code (real Blender, the real backend process): the panel's state
holds structured lines, and nothing is parsed back out of the report's text."""

from __future__ import annotations

import importlib
import shutil

import bpy
import pytest
from blender_helpers import MODULE, add_character, add_sound, scene_state

pytestmark = pytest.mark.blender


def test_a_backend_error_arrives_in_the_panel_with_its_code(clean_scene, short_speech, tmp_path, ops):
    errors = importlib.import_module(MODULE + ".backend.errors")
    ui = importlib.import_module(MODULE + ".ui")
    add_character()
    broken = tmp_path / "broken.wav"
    shutil.copy(short_speech, broken)
    add_sound(clean_scene, broken)
    broken.write_bytes(b"RIFF but not audio at all" * 40)  # the backend cannot decode it: an AudioError
    before = scene_state(clean_scene)
    with pytest.raises(RuntimeError, match="not readable audio"):
        bpy.ops.expgest.generate()
    assert scene_state(clean_scene) == before
    (line,) = [line for line in ops.REPORT.lines if line.level == "ERROR"]
    assert line.code == errors.AUDIO_ERROR and line.title == errors.AudioError.title
    assert line.text.startswith("Failed 'SMPLX': ") and "not readable audio" in line.text
    assert ops.REPORT.codes == [errors.AUDIO_ERROR] and clean_scene.expgest.last_report_is_error
    assert ui.code_label(line) == f"Audio error (code {errors.AUDIO_ERROR})"
    assert not ui.BACKEND_PROCESS_CODES.intersection(ops.REPORT.codes)  # no Check Backend button for bad audio


def test_an_invalid_request_is_a_typed_error_before_anything_starts(clean_scene, short_speech, ops, monkeypatch):
    """The request validates itself when the add-on builds it: the RequestError reaches the panel at once."""
    errors = importlib.import_module(MODULE + ".backend.errors")
    obj = add_character()
    add_sound(clean_scene, short_speech)
    obj.expgest.engine = "expgest"
    monkeypatch.delenv("EXPGEST_MODELS", raising=False)
    with pytest.raises(RuntimeError, match="Request field 'models'"):
        bpy.ops.expgest.generate()
    assert ops.active_run() is None
    (line,) = ops.REPORT.lines
    assert line.level == "ERROR" and line.code == errors.INVALID_PARAMS and line.title == "invalid request field"


def test_a_dead_backend_interpreter_offers_check_backend(clean_scene, short_speech, ops, monkeypatch):
    """The backend-process codes, not words in the message, decide that the panel offers Check Backend."""
    errors = importlib.import_module(MODULE + ".backend.errors")
    ui = importlib.import_module(MODULE + ".ui")
    add_character()
    add_sound(clean_scene, short_speech)
    monkeypatch.setenv("EXPGEST_BACKEND_PYTHON", "/nonexistent/python3")
    with pytest.raises(RuntimeError):
        bpy.ops.expgest.generate()
    assert ops.REPORT.codes == [errors.SERVER_NOT_STARTED]
    assert ui.BACKEND_PROCESS_CODES.intersection(ops.REPORT.codes)
