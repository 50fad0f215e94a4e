"""Rigs as they arrive from other tools: exported by the test to glTF and FBX, imported back through
Blender's own importers (their bone-axis conventions, tails along one axis, scale, parent empties), then
identified, retargeted and checked with Blender's pose evaluation against SMPL-X forward kinematics.
"""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from humanoid_rigs import expected_map, humanoid  # noqa: E402
from test_any_rig import _scene, _split, build_rig, retarget_and_measure  # noqa: E402

from blender_addon import rigmap  # noqa: E402


def _skin(obj):
    """A small skinned mesh (one triangle per bone, weight 1) so exporters write the skeleton as a skin."""
    verts, faces = [], []
    for bone in obj.data.bones:
        head = np.array(bone.head_local)
        base = len(verts)
        verts += [head, head + (0.01, 0, 0), head + (0, 0, 0.01)]
        faces.append((base, base + 1, base + 2))
    mesh = bpy.data.meshes.new("Body")
    mesh.from_pydata([tuple(v) for v in verts], [], faces)
    body = bpy.data.objects.new("Body", mesh)
    bpy.context.scene.collection.objects.link(body)
    body.parent = obj
    modifier = body.modifiers.new("Armature", "ARMATURE")
    modifier.object = obj
    for k, bone in enumerate(obj.data.bones):
        group = body.vertex_groups.new(name=bone.name)
        group.add([3 * k, 3 * k + 1, 3 * k + 2], 1.0, "REPLACE")
    return body


def _enable(module):
    import addon_utils

    addon_utils.enable(module, default_set=True)


def _import_armature():
    armatures = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
    assert len(armatures) == 1, [o.name for o in bpy.context.scene.objects]
    return armatures[0]


def _check(obj, bones):
    bone_map, angles, _, _ = retarget_and_measure(obj)
    expected = expected_map(bones)
    got = {role: bone_map.bones_of(role) for role in rigmap.ROLES if bone_map.bones_of(role)}
    assert got == expected
    body, fingers = _split(angles)
    assert body.mean() < 1.0 and np.percentile(body, 95) < 3.0, {k: round(float(v.max()), 2)
                                                                  for k, v in angles.items()}
    assert fingers.mean() < 1.0 and np.percentile(fingers, 95) < 3.0


@pytest.mark.parametrize("heuristic", ["BLENDER", "TEMPERANCE"])
def test_gltf_round_trip(tmp_path, heuristic):
    """VRM-style rig in A-pose, rotated empty above it; 'BLENDER' import points every tail along one axis."""
    _enable("io_scene_gltf2")
    _scene()
    bones = humanoid("vrm1", pose="A", rng=np.random.default_rng(4))
    obj = build_rig(bones, "Avatar")
    _skin(obj)
    empty = bpy.data.objects.new("Turn", None)
    bpy.context.scene.collection.objects.link(empty)
    empty.rotation_euler = (0.0, 0.0, np.pi / 2)
    obj.parent = empty
    path = tmp_path / "avatar.glb"
    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB")
    _scene()
    bpy.ops.import_scene.gltf(filepath=str(path), bone_heuristic=heuristic)
    imported = _import_armature()
    assert set(b.name for b in imported.data.bones) == {b.name for b in bones}
    _check(imported, bones)


def test_fbx_round_trip_mixamo(tmp_path):
    """Mixamo naming with a 'mixamorig:' prefix, T-pose, end bones; FBX through Blender's importer."""
    _enable("io_scene_fbx")
    _scene()
    bones = humanoid("mixamo", ends=True, rng=np.random.default_rng(6))
    obj = build_rig(bones, "Armature")
    _skin(obj)
    path = tmp_path / "mixamo.fbx"
    bpy.ops.export_scene.fbx(filepath=str(path), add_leaf_bones=False, global_scale=100.0)
    _scene()
    bpy.ops.import_scene.fbx(filepath=str(path), automatic_bone_orientation=True)
    imported = _import_armature()
    assert abs(imported.matrix_world.to_scale()[0] - 1.0) > 0.5 or imported.dimensions.z > 10  # other units
    _check(imported, bones)


def _mixamo_download(bones):
    """As Mixamo ships a character: armature data Y up in centimetres, the object turned +90 degrees about X
    and scaled 0.01."""
    for bone in bones:
        bone.head = np.array([bone.head[0], bone.head[2], -bone.head[1]]) * 100.0
        bone.tail = np.array([bone.tail[0], bone.tail[2], -bone.tail[1]]) * 100.0
    return dict(rotation=(np.pi / 2, 0.0, 0.0), scale=0.01)


ROUND_TRIPS = [
    # family, file format, humanoid() options, object set-up
    ("ue5", "fbx", dict(twist=True, thigh_twist=True, root=True, pose="A"), "root bone above the pelvis"),
    ("mixamo", "fbx", dict(ends=True), "Mixamo download: Y up, cm, object scale 0.01"),
    ("cc", "fbx", dict(twist=True, thigh_twist=True, extras=True), "CC/AccuRIG export"),
    ("daz8", "fbx", dict(twist=True, thigh_twist=True, pose="A"), "Daz bend/twist pairs"),
    ("rigify_def", "glb", dict(twist=True, tilt=(20.0, 35.0)), "tilted, yawed bind pose; tails along one axis"),
    ("vroid", "glb", dict(pose="A", extras=True), "under a rotated empty"),
]


def round_trip(folder, family, fmt, build, setup):
    """Build a test rig of ``family``, write it with Blender's exporter, read it back with the importer.

    Returns:
        (the imported armature object, the bones as built).
    """
    _enable("io_scene_fbx" if fmt == "fbx" else "io_scene_gltf2")
    _scene()
    bones = humanoid(family, rng=np.random.default_rng(9), **build)
    transform = _mixamo_download(bones) if family == "mixamo" else {}
    obj = build_rig(bones, "Armature", **transform)
    _skin(obj)
    if "empty" in setup:
        empty = bpy.data.objects.new("Turn", None)
        bpy.context.scene.collection.objects.link(empty)
        empty.rotation_euler = (0.0, 0.0, 2.5)
        empty.location = (1.0, 2.0, 0.0)
        obj.parent = empty
    path = folder / f"rig.{fmt}"
    if fmt == "fbx":
        bpy.ops.export_scene.fbx(filepath=str(path), add_leaf_bones=False)
        _scene()
        bpy.ops.import_scene.fbx(filepath=str(path))
    else:
        bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB")
        _scene()
        bpy.ops.import_scene.gltf(filepath=str(path))  # default bone heuristic: tails along one axis
    return _import_armature(), bones


@pytest.mark.parametrize("family,fmt,build,setup", ROUND_TRIPS, ids=[f"{c[0]}-{c[1]}" for c in ROUND_TRIPS])
def test_round_trip_through_blenders_importers(tmp_path, family, fmt, build, setup):
    """Each rig family written by Blender's exporter and read back by its importer (their axis conversions,
    bone orientations and unit scales), then identified, keyed and measured with Blender's pose evaluation."""
    imported, bones = round_trip(tmp_path, family, fmt, build, setup)
    assert {b.name for b in imported.data.bones} == {b.name for b in bones}
    if family == "mixamo":
        assert imported.matrix_world.to_scale()[0] == pytest.approx(0.01, rel=1e-3)
    if "empty" in setup:
        assert imported.parent is not None and imported.parent.type == "EMPTY"
    _check(imported, bones)
    if build.get("twist"):
        from blender_addon import keyframes

        rest = keyframes.read_armature_rest(imported)
        twist_bones = {rest.names[b] for b, share in enumerate(rest.twist_share or ()) if share[0] >= 0
                       and rest.joint_of_bone[b] < 0}
        assert len(twist_bones) >= 4, twist_bones  # upper-arm and forearm twist bones of both arms at least
