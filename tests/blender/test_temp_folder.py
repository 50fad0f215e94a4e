"""Add Character and Generate around the temporary folder and the backend server, in real Blender.

An unwritable temporary folder (or a full disk) gives a clear report, no traceback, and changes nothing.
Python's ``tempfile`` is pointed at a path below a regular *file*, so creating a folder there fails with
``NotADirectoryError`` even when the tests run as root (where a read-only folder would not stop anything).
"""

from __future__ import annotations

import importlib
import tempfile

import bpy
import pytest
from blender_helpers import MODULE, add_character, add_sound, scene_state

pytestmark = pytest.mark.blender


@pytest.fixture
def unwritable_temp(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    return blocker / "tmp"


def test_generate_with_an_unwritable_temp_folder_reports_it_and_changes_nothing(clean_scene, short_speech,
                                                                                 unwritable_temp):
    obj = add_character()
    add_sound(clean_scene, short_speech)
    before = scene_state(clean_scene)
    with pytest.raises(RuntimeError) as raised:  # bpy.ops raises the operator's ERROR report, or its traceback
        bpy.ops.expgest.generate()
    assert str(raised.value).startswith("Error: The temporary folder")
    report = clean_scene.expgest.last_report
    assert clean_scene.expgest.last_report_is_error
    assert f"The temporary folder '{unwritable_temp}' cannot be written" in report
    assert "TMPDIR" in report and "Traceback" not in str(raised.value)
    assert scene_state(clean_scene) == before
    assert obj.animation_data is None or not obj.animation_data.nla_tracks


def test_add_character_with_an_unwritable_temp_folder_adds_the_skeleton_and_says_why(clean_scene, unwritable_temp):
    result = bpy.ops.expgest.add_character(name="Body", with_mesh=True)
    assert result == {"FINISHED"}
    armature = bpy.data.objects["Body"]
    assert len(armature.data.bones) == 55
    assert not [o for o in clean_scene.objects if o.type == "MESH"]  # the body needs the temporary folder
    report = clean_scene.expgest.last_report
    assert "cannot be written" in report and "without a body" in report


def test_add_character_builds_the_body_on_the_backend_server_that_generate_then_reuses(clean_scene, short_speech,
                                                                                       ops):
    runs = importlib.import_module(MODULE + ".runs")
    ops.shutdown_backend()
    assert bpy.ops.expgest.add_character(name="Body", with_mesh=True) == {"FINISHED"}
    assert [o for o in clean_scene.objects if o.type == "MESH"]
    backend = runs._BACKEND  # the server's ``character`` method built the body; the process stays warm
    assert backend is not None and backend.alive
    add_sound(clean_scene, short_speech)
    assert bpy.ops.expgest.generate() == {"FINISHED"}, clean_scene.expgest.last_report
    assert runs._BACKEND is backend and backend.alive
