"""The installed add-on on non-SMPL-X rigs: one click animates a Mixamo/UE character from its mesh, and the
Bone Map operators (edit, detect, preset save/load, automatic) store the map on the armature."""

from __future__ import annotations

import json

import bpy
import numpy as np
import pytest
from blender_helpers import add_sound
from humanoid_rigs import humanoid
from test_any_rig import build_rig
from test_rig_import import _skin

pytestmark = pytest.mark.blender


def _keyed_bones(obj):
    (track,) = list(obj.animation_data.nla_tracks)
    (strip,) = list(track.strips)
    action = strip.action
    if bpy.app.version >= (4, 4, 0):
        curves = action.layers[0].strips[0].channelbag(action.slots[0]).fcurves
    else:
        curves = action.fcurves
    return {c.data_path.split('"')[1] for c in curves}


def test_one_click_on_a_mixamo_character_selected_by_its_mesh(clean_scene, short_speech):
    obj = build_rig(humanoid("mixamo", pose="A", fingers=False, ends=True, rng=np.random.default_rng(0)),
                    "Remy", rotation=(0.0, 0.0, 0.5), scale=0.01)
    body = _skin(obj)
    bpy.context.view_layer.objects.active = body
    add_sound(clean_scene, short_speech)
    assert bpy.ops.expgest.generate() == {"FINISHED"}, clean_scene.expgest.last_report
    keyed = _keyed_bones(obj)
    assert {"mixamorig:Hips", "mixamorig:LeftArm", "mixamorig:RightForeArm", "mixamorig:Spine2"} <= keyed
    assert not any("End" in name for name in keyed)  # end bones are left alone
    report = clean_scene.expgest.last_report
    assert "No bones for left fingers, right fingers" in report, report
    # The arms really move in Blender's evaluation (a gesture unit may start late: look over the whole take).
    hands = ("mixamorig:LeftHand", "mixamorig:RightHand")
    clean_scene.frame_set(1)
    first = [np.array(obj.pose.bones[name].head) for name in hands]
    moved = 0.0
    for frame in range(1, int(clean_scene.frame_end) + 1, 3):
        clean_scene.frame_set(frame)
        moved = max(moved, *(float(np.linalg.norm(np.array(obj.pose.bones[name].head) - start))
                             for name, start in zip(hands, first, strict=True)))
    assert moved > 0.02, moved  # armature space


def test_a_rig_without_essential_bones_gets_one_message(clean_scene, short_speech):
    bones = [b for b in humanoid("ue5") if not b.name.startswith(("thigh_l", "calf_l", "foot_l", "ball_l"))]
    build_rig(bones, "OneLeg")
    add_sound(clean_scene, short_speech)
    bpy.context.scene.expgest.character = bpy.data.objects["OneLeg"]
    with pytest.raises(RuntimeError) as error:
        bpy.ops.expgest.generate()
    message = str(error.value)
    assert "left thigh, left shin, left foot" in message and "Bone Map panel" in message


def test_bone_map_edit_preset_save_load_and_automatic(clean_scene, tmp_path):
    first = build_rig(humanoid("cc"), "First")
    bpy.context.view_layer.objects.active = first
    assert bpy.ops.expgest.bone_map_edit() == {"FINISHED"}
    rows = first.data.expgest_map_rows
    by_role = {row.role: row for row in rows if row.role != "spine"}
    assert by_role["left_wrist"].bone == "CC_Base_L_Hand"
    assert [row.bone for row in rows if row.role == "spine"] == ["CC_Base_Waist", "CC_Base_Spine01",
                                                                  "CC_Base_Spine02"]
    # The user picks another bone for the head: stored at once, and the retarget uses it.
    by_role["head"].bone = "CC_Base_NeckTwist02"
    stored = json.loads(first.data["expgest_bone_map"])
    assert ["head", "CC_Base_NeckTwist02"] in stored["map"] and stored["convention"] == "user"
    # Add a spine row and fill it.
    assert bpy.ops.expgest.bone_map_add_row(role="spine") == {"FINISHED"}
    spine_rows = [row for row in rows if row.role == "spine"]
    assert len(spine_rows) == 4 and spine_rows[-1].bone == ""
    preset = tmp_path / "cc.json"
    assert bpy.ops.expgest.bone_map_save_preset(filepath=str(preset)) == {"FINISHED"}
    saved = json.loads(preset.read_text())
    assert saved["format"] == "expgest-bone-map" and ["head", "CC_Base_NeckTwist02"] in saved["map"]
    # Load onto a second CC rig.
    second = build_rig(humanoid("cc", pose="A"), "Second", location=(2, 0, 0))
    bpy.context.view_layer.objects.active = second
    assert bpy.ops.expgest.bone_map_load_preset(filepath=str(preset)) == {"FINISHED"}
    assert ["head", "CC_Base_NeckTwist02"] in json.loads(second.data["expgest_bone_map"])["map"]
    # Detect Again restores the automatic result; Automatic forgets the stored map.
    assert bpy.ops.expgest.bone_map_detect() == {"FINISHED"}
    assert ["head", "CC_Base_Head"] in json.loads(second.data["expgest_bone_map"])["map"]
    assert bpy.ops.expgest.bone_map_clear() == {"FINISHED"}
    assert "expgest_bone_map" not in second.data and len(second.data.expgest_map_rows) == 0
    # A preset naming bones this rig lacks: loaded where it can, the rest named in a warning.
    third = build_rig(humanoid("cc", fingers=False), "Third", location=(4, 0, 0))
    bpy.context.view_layer.objects.active = third
    assert bpy.ops.expgest.bone_map_load_preset(filepath=str(preset)) == {"FINISHED"}
    assert "CC_Base_L_Index1" not in third.data["expgest_bone_map"]
    # Not a preset: a clear error, nothing stored.
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(RuntimeError, match="not an ExpGest bone-map preset"):
        bpy.ops.expgest.bone_map_load_preset(filepath=str(bad))
