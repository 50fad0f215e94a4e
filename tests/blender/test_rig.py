"""SMPL-X characters in real Blender (bpy): armature, skinned body, bone lookup, preview renders."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import bpy
import numpy as np
import pytest
from mathutils import Matrix, Quaternion, Vector

from backend.motion.skeleton import JOINT_NAMES, PARENTS, REST_JOINTS
from blender_addon.rig import build_character_object, find_smplx_bones
from scripts.preview import frame_camera, render_preview
from tests.blender._rig_helpers import build_character_file, clean_scene

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def character_npz(tmp_path_factory) -> Path:
    return build_character_file(tmp_path_factory.mktemp("character") / "neutral.npz")


def _evaluated_vertices(obj: bpy.types.Object) -> np.ndarray:
    """(V, 3) vertex positions of the evaluated (deformed) mesh, object space."""
    bpy.context.view_layer.update()
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    try:
        coords = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", coords)
    finally:
        evaluated.to_mesh_clear()
    return coords.reshape(-1, 3).astype(np.float64)


def _to_blender(points):
    """SMPL-X (Y up) to Blender (Z up) with mathutils: +90 degrees about X (not the add-on's conversion)."""
    return np.asarray(points, dtype=np.float64) @ np.array(Matrix.Rotation(math.pi / 2, 3, "X")).T


def test_builtin_skeleton_armature():
    clean_scene()
    arm = build_character_object(bpy.context, character=None)
    assert arm.type == "ARMATURE" and arm.name == "SMPLX" and not arm.children
    bones = arm.data.bones
    assert sorted(bone.name for bone in bones) == sorted(JOINT_NAMES)
    heads = _to_blender(REST_JOINTS)
    for joint, name in enumerate(JOINT_NAMES):
        bone = bones[name]
        parent = PARENTS[joint]
        assert (bone.parent.name if bone.parent else None) == (JOINT_NAMES[parent] if parent >= 0 else None)
        np.testing.assert_allclose(bone.head_local, heads[joint], atol=1e-6)
        assert bone.length > 0.005
        assert arm.pose.bones[name].rotation_mode == "QUATERNION"
    # axes: SMPL-X (x, y, z) -> Blender (x, -z, y); the head is above the pelvis, the left wrist at +X
    assert bones["head"].head_local.z > bones["pelvis"].head_local.z + 0.5
    assert bones["left_wrist"].head_local.x > 0.6 and bones["right_wrist"].head_local.x < -0.6
    # tails point at the child that continues the chain
    for joint, child in (("left_elbow", "left_wrist"), ("spine3", "neck"), ("pelvis", "spine1"),
                         ("right_wrist", "right_middle1"), ("left_index2", "left_index3")):
        np.testing.assert_allclose(bones[joint].tail_local, bones[child].head_local, atol=1e-6)
    # standing on the floor: the feet joints just above Z = 0
    lowest = min((arm.matrix_world @ bone.head_local).z for bone in bones)
    assert abs(lowest) < 1e-6


def test_skinned_body_follows_the_armature(character_npz):
    clean_scene()
    arm = build_character_object(bpy.context, name="Speaker", character=character_npz)
    (body,) = arm.children
    assert body.type == "MESH" and body.name == "Speaker_body"
    modifier = next(m for m in body.modifiers if m.type == "ARMATURE")
    assert modifier.object == arm
    data = np.load(character_npz)
    rest = _to_blender(data["vertices"])
    assert len(body.data.vertices) == len(rest) and len(body.data.polygons) == len(data["faces"])
    assert {group.name for group in body.vertex_groups} <= set(JOINT_NAMES)
    assert len(body.vertex_groups) == len(np.unique(data["skin_indices"][data["skin_weights"] > 0]))
    # weights came through: per-vertex sums are 1 (checked on a sample)
    for index in range(0, len(rest), 997):
        assert math.isclose(sum(g.weight for g in body.data.vertices[index].groups), 1.0, abs_tol=1e-5)
    # the body stands on the floor and faces -Y (nose forward)
    world_rest = rest + np.array(arm.location)
    assert abs(world_rest[:, 2].min()) < 1e-5 and 1.6 < world_rest[:, 2].max() < 1.85
    np.testing.assert_allclose(_evaluated_vertices(body), rest, atol=1e-5)  # rest pose: no deformation

    # rotate the left shoulder 60 degrees about the bone's own axis
    pose_bone = arm.pose.bones["left_shoulder"]
    pose_bone.rotation_quaternion = Quaternion((0.0, 0.0, 1.0), math.radians(60))
    posed = _evaluated_vertices(body)
    indices, weights = data["skin_indices"], data["skin_weights"]
    subtree = {JOINT_NAMES.index("left_shoulder")}
    for joint, parent in enumerate(PARENTS):
        if parent in subtree:
            subtree.add(joint)
    arm_only = np.isin(np.where(weights > 0, indices, -1), [*subtree, -1]).all(1)
    hand = arm_only & (rest[:, 0] > 0.7)
    untouched = ~np.isin(np.where(weights > 0, indices, -1), list(subtree)).any(1)
    assert hand.sum() > 500 and untouched.sum() > 10000
    assert np.linalg.norm(posed[hand] - rest[hand], axis=1).min() > 0.1  # the hand moved
    np.testing.assert_allclose(posed[untouched], rest[untouched], atol=1e-5)  # the rest of the body did not
    # rigidly: a rotation about the shoulder joint, by the pose rotation expressed in armature space
    bone = arm.data.bones["left_shoulder"]
    rest_matrix = bone.matrix_local.to_3x3()
    rotation = np.array(rest_matrix @ pose_bone.rotation_quaternion.to_matrix() @ rest_matrix.inverted())
    pivot = np.array(bone.head_local)
    expected = (rest[arm_only] - pivot) @ rotation.T + pivot
    np.testing.assert_allclose(posed[arm_only], expected, atol=1e-4)


def test_builds_fast_and_mesh_optional(character_npz):
    clean_scene()
    arm = build_character_object(bpy.context, character=character_npz, with_mesh=False)
    assert not arm.children and len(arm.data.bones) == 55


def test_find_smplx_bones_on_ours_and_renamed():
    clean_scene()
    arm = build_character_object(bpy.context, character=None)
    assert find_smplx_bones(arm) == dict(enumerate(JOINT_NAMES))

    renamed = {"pelvis": "SMPLX:Pelvis", "left_hip": "L_Hip", "right_hip": "smplx_right_hip",
               "left_wrist": "rig|Left_Wrist", "right_index1": "index1.R", "left_thumb3": "LeftThumb3",
               "left_eye_smplhf": "left_eye", "spine3": "SPINE3"}
    for old, new in renamed.items():
        arm.data.bones[old].name = new
    mapping = find_smplx_bones(arm)
    assert len(mapping) == 55
    for old, new in renamed.items():
        assert mapping[JOINT_NAMES.index(old)] == new


def test_find_smplx_bones_ignores_extra_bones_and_prefers_exact_names():
    clean_scene()
    arm = build_character_object(bpy.context, character=None)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    root = arm.data.edit_bones.new("root")  # the SMPL-X Blender add-on's armature has one above the pelvis
    root.head, root.tail = (0, 0, 0), (0, 0, 0.1)
    arm.data.edit_bones["pelvis"].parent = root
    decoy = arm.data.edit_bones.new("helper_pelvis")
    decoy.head, decoy.tail = (0, 0, 0), (0, 0, 0.1)
    bpy.ops.object.mode_set(mode="OBJECT")
    assert find_smplx_bones(arm) == dict(enumerate(JOINT_NAMES))


def test_find_smplx_bones_rejects_other_rigs():
    clean_scene()
    armature = bpy.data.armatures.new("Rig")
    rig = bpy.data.objects.new("Rig", armature)
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    for name in ("Hips", "Spine", "Head", "pelvis"):
        bone = armature.edit_bones.new(name)
        bone.head, bone.tail = (0, 0, 0), (0, 0, 0.1)
    bpy.ops.object.mode_set(mode="OBJECT")
    with pytest.raises(ValueError, match=r"not an SMPL-X skeleton: no bone for left_hip, right_hip, spine1"):
        find_smplx_bones(rig)
    cube = bpy.data.objects.new("Cube", bpy.data.meshes.new("Cube"))
    with pytest.raises(ValueError, match="Expected an SMPL-X armature, got a mesh object"):
        find_smplx_bones(cube)


def test_rejects_a_non_smplx_character_file(tmp_path):
    clean_scene()
    np.savez(tmp_path / "bad.npz", joint_names=np.array(["a", "b"]), parents=np.array([-1, 0]),
             rest_joints=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="not an SMPL-X 55-joint skeleton"):
        build_character_object(bpy.context, character=tmp_path / "bad.npz")
    assert not [obj for obj in bpy.data.objects if obj.type == "ARMATURE"]


def _image_pixels(path: Path) -> np.ndarray:
    image = bpy.data.images.load(str(path))
    try:
        pixels = np.empty(image.size[0] * image.size[1] * image.channels, np.float32)
        image.pixels.foreach_get(pixels)
        return pixels.reshape(image.size[1], image.size[0], image.channels)[..., :3]
    finally:
        bpy.data.images.remove(image)


def test_preview_renders_the_character(character_npz, tmp_path, speech_wav):
    scene = clean_scene()
    arm = build_character_object(bpy.context, character=character_npz)
    scene.render.fps, scene.frame_start, scene.frame_end = 30, 1, 12
    pose_bone = arm.pose.bones["right_shoulder"]
    rest_matrix = arm.data.bones["right_shoulder"].matrix_local.to_3x3()
    for frame, angle in ((1, 0.0), (12, 70.0)):  # lower the right arm (about the front-back axis)
        swing = Matrix.Rotation(math.radians(angle), 3, "Y")
        pose_bone.rotation_quaternion = (rest_matrix.inverted() @ swing @ rest_matrix).to_quaternion()
        pose_bone.keyframe_insert("rotation_quaternion", frame=frame)
    engine, size = scene.render.engine, (scene.render.resolution_x, scene.render.resolution_y)
    result = render_preview(bpy.context, tmp_path / "preview.mp4", frame_step=4, resolution=160,
                            audio=speech_wav, audio_offset_s=0.5, keep_frames=True)
    assert result.num_frames == 3 and result.fps == 7.5
    frames = sorted(result.frames_dir.glob("frame_*.png"))
    assert len(frames) == 3 and all(frame.stat().st_size > 1000 for frame in frames)
    first, last = _image_pixels(frames[0]), _image_pixels(frames[-1])
    assert first.shape == (160, 160, 3)
    background = first[0, 0]
    body = np.abs(first - background).max(-1) > 0.05
    assert 0.04 < body.mean() < 0.6, body.mean()  # the character fills a fair share of the frame
    rows = np.flatnonzero(body.any(1))
    assert rows[-1] - rows[0] > 0.6 * 160  # a full body, standing
    moved = np.abs(first - background).max(-1) > 0.05
    moved ^= np.abs(last - background).max(-1) > 0.05
    assert moved.mean() > 0.1 * body.mean()  # the raised arm shows: silhouettes differ
    assert scene.render.engine == engine and (scene.render.resolution_x, scene.render.resolution_y) == size

    if shutil.which("ffprobe") is None:
        assert result.video is None
        return
    assert result.video == tmp_path / "preview.mp4" and result.video.stat().st_size > 1000
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,nb_frames",
                            "-of", "json", str(result.video)], capture_output=True, text=True, check=True)
    streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
    assert set(streams) == {"video", "audio"} and int(streams["video"]["nb_frames"]) == 3


def test_preview_camera_sees_the_front():
    scene = clean_scene()
    arm = build_character_object(bpy.context, character=None)
    camera = frame_camera(bpy.context, [arm], frames=[1])
    assert scene.camera == camera
    view = camera.matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0))  # a camera looks along its -Z
    assert view.y > 0.8  # from in front of the body (it faces -Y), towards it
    assert camera.location.y < -1.0 and camera.location.x > 0.0  # three-quarter: turned to the body's left
    # the whole body is in view: every bone head projects inside the frame
    from bpy_extras.object_utils import world_to_camera_view

    for bone in arm.data.bones:
        u, v, depth = world_to_camera_view(scene, camera, arm.matrix_world @ bone.head_local)
        assert 0.0 < u < 1.0 and 0.0 < v < 1.0 and depth > 0


DEBIAN_BLENDER_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
import bpy
import numpy as np
from mathutils import Quaternion
from blender_addon.rig import build_character_object, find_smplx_bones
bpy.ops.wm.read_homefile(use_empty=True)
arm = build_character_object(bpy.context, character={npz!r})
body = arm.children[0]
def evaluated():
    bpy.context.view_layer.update()
    ev = body.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = ev.to_mesh()
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    return co.reshape(-1, 3)
rest = evaluated()
arm.pose.bones["left_elbow"].rotation_quaternion = Quaternion((0.0, 0.0, 1.0), 1.0)
moved = np.linalg.norm(evaluated() - rest, axis=1)
json.dump(dict(version=list(bpy.app.version), bones=len(arm.data.bones), vertices=len(body.data.vertices),
               groups=len(body.vertex_groups), found=len(find_smplx_bones(arm)),
               heads=[list(arm.data.bones[n].head_local) for n in ("pelvis", "left_wrist")],
               moved=int((moved > 0.05).sum()), still=int((moved < 1e-6).sum())), open({out!r}, "w"))
"""


@pytest.mark.skipif(shutil.which("blender") is None, reason="Debian's blender (3.4) is not installed")
def test_rig_on_debian_blender(character_npz, tmp_path, repo_root):
    """The same code in Debian's Blender 3.4 binary (system Python, older mesh API)."""
    out = tmp_path / "result.json"
    script = DEBIAN_BLENDER_SCRIPT.format(root=str(repo_root), npz=str(character_npz), out=str(out))
    result = subprocess.run(["blender", "-b", "--factory-startup", "--python-exit-code", "1",
                             "--python-expr", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and out.exists(), result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["bones"] == 55 and report["found"] == 55 and report["vertices"] == 24256
    assert report["groups"] == 51
    heads = _to_blender(REST_JOINTS[[0, 20]])
    np.testing.assert_allclose(report["heads"], heads, atol=1e-6)
    assert report["moved"] > 500 and report["still"] > 15000  # the forearm moved, the rest stayed


def test_scene_audio_offsets(speech_wav):
    from scripts.preview import scene_audio

    scene = clean_scene()
    scene.render.fps = 30
    assert scene_audio(scene, 1) is None
    editor = scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    strip = strips.new_sound("speech", str(speech_wav), channel=1, frame_start=11)
    path, offset = scene_audio(scene, 1)
    assert path == speech_wav and math.isclose(offset, -10 / 30)  # the speech starts 10 frames in
    strip.frame_offset_start = 15  # trimmed: the strip shows the file from 0.5 s on, at frame 26
    path, offset = scene_audio(scene, 31)
    assert math.isclose(offset, 0.5 + 5 / 30, abs_tol=1e-6)
    strip.mute = True
    assert scene_audio(scene, 1) is None
