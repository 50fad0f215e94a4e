"""Any humanoid rig in real Blender: identify its bones, retarget an SMPL-X motion, key it through the bulk
writer, and check Blender's own pose evaluation against SMPL-X forward kinematics (per-segment angles).

Rigs are built by the tests in each naming convention (``humanoid_rigs.py``), in T- and A-pose, with other
proportions, random bone rolls, a rotated and scaled armature object, twist bones, 1 and 5 spine bones and
no fingers; the Rigify meta-rig comes from Rigify itself (it ships with Blender).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from humanoid_rigs import FINGERS, expected_map, generate_rigify_without_face, gesture_motion, humanoid  # noqa: E402
from smplx_oracle import evaluated_heads, take_angles  # noqa: E402

from blender_addon import keyframes, retarget, rig, rigmap  # noqa: E402

FRAMES = 24


def _scene():
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    return bpy.context.scene


def build_rig(bones, name="Rig", location=(0.0, 0.0, 0.0), rotation=(0.0, 0.0, 0.0), scale=1.0):
    """An armature object from ``humanoid_rigs`` bones (edit bones: head, tail, roll, parent)."""
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    bpy.ops.object.mode_set(mode="EDIT")
    edit = {}
    for bone in bones:
        eb = data.edit_bones.new(bone.name)
        eb.head, eb.tail, eb.roll = bone.head.tolist(), bone.tail.tolist(), bone.roll
        if bone.parent:
            eb.parent = edit[bone.parent]
        edit[bone.name] = eb
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.location, obj.rotation_euler, obj.scale = location, rotation, (scale, scale, scale)
    bpy.context.view_layer.update()
    return obj


def retarget_and_measure(obj, poses=None, trans=None, details=None):
    """Key the motion on ``obj`` (as the operator does) and return (map, angles per segment, rest, tracks).

    ``details`` (a dict), when given, receives the evaluated heads and the SMPL-X joints in the rig's world.
    """
    if poses is None:
        poses, trans = gesture_motion(FRAMES, seed=3)
    rest = keyframes.read_armature_rest(obj)
    tracks = retarget.retarget_motion(poses, trans, rest)
    keyframes.apply_take(obj, tracks, strip_name="speech", frame_start=1)
    bone_map = rig.bone_map_for(obj)
    angles, heads, smplx = take_angles(obj, bone_map, poses, trans, retarget.align_rest_frames(rest).rotation)
    if details is not None:
        details.update(heads=heads, smplx=smplx)
    return bone_map, angles, rest, tracks


def _hip_height(points, pelvis, ankles):
    return float(np.linalg.norm(points[pelvis] - 0.5 * (points[ankles[0]] + points[ankles[1]])))


def check_hands_feet_and_flips(bone_map, rest, tracks, details, feet_tolerance):
    """Hands land where SMPL-X's do relative to arm length; feet move like SMPL-X's relative to hip height
    (no sliding, no floating); keys never flip hemisphere."""
    from backend.motion.skeleton import JOINT_INDEX

    heads, smplx = details["heads"], details["smplx"]
    roles = bone_map.roles
    for side in ("left", "right"):
        shoulder, elbow, wrist = (roles[f"{side}_{j}"] for j in ("shoulder", "elbow", "wrist"))
        rig_arm = np.linalg.norm(heads[elbow][0] - heads[shoulder][0]) + np.linalg.norm(heads[wrist][0]
                                                                                         - heads[elbow][0])
        s, e, w = (JOINT_INDEX[f"{side}_{j}"] for j in ("shoulder", "elbow", "wrist"))
        smplx_arm = np.linalg.norm(smplx[0, e] - smplx[0, s]) + np.linalg.norm(smplx[0, w] - smplx[0, e])
        rig_hand = (heads[wrist] - heads[shoulder]) / rig_arm
        smplx_hand = (smplx[:, w] - smplx[:, s]) / smplx_arm
        assert np.linalg.norm(rig_hand - smplx_hand, axis=-1).max() < 0.05, side
    # Feet: displacement from the first frame, in hip heights.
    pelvis = roles["pelvis"]
    ankles = (roles["left_ankle"], roles["right_ankle"])
    rig_first = {n: heads[n][0] for n in (pelvis, *ankles)}
    rig_h = _hip_height(rig_first, pelvis, ankles)
    smplx_h = _hip_height({0: smplx[0, 0], 7: smplx[0, 7], 8: smplx[0, 8]}, 0, (7, 8))
    for ankle, joint in zip(ankles, (7, 8), strict=True):
        rig_path = (heads[ankle] - heads[ankle][0]) / rig_h
        smplx_path = (smplx[:, joint] - smplx[0, joint]) / smplx_h
        assert np.linalg.norm(rig_path - smplx_path, axis=-1).max() < feet_tolerance, ankle
    q = tracks.quaternions
    assert (np.einsum("tbc,tbc->tb", q[1:], q[:-1]) >= 0).all()


def _split(angles):
    body = [v for k, v in angles.items() if not any(f in k for f in FINGERS)]
    fingers = [v for k, v in angles.items() if any(f in k for f in FINGERS)]
    return np.concatenate(body), (np.concatenate(fingers) if fingers else np.zeros(0))


CASES = [
    ("mixamo", dict(ends=True), {}),
    ("mixamo", dict(pose="A", fingers=False, spine=2), dict(rotation=(0.3, 0.0, 1.2), scale=0.01)),
    ("ue5", dict(twist=True, root=True), {}),
    ("ue5", dict(pose="A", spine=1, neck=1), dict(location=(2.0, 1.0, 0.0), scale=100.0)),
    ("vrm1", dict(proportions="stylised"), dict(rotation=(0.0, 0.0, np.pi))),
    ("vroid", dict(pose="A"), {}),
    ("rigify_def", dict(twist=True), {}),
    ("cc", dict(twist=True, pose="A"), {}),
    ("daz8", dict(twist=True), dict(rotation=(np.pi / 2, 0.0, 0.0))),
    ("mixamo", dict(spine=4, neck=2, ring=False), {}),
    ("smplx", {}, dict(rotation=(np.pi / 2, 0.0, 0.0))),
    ("rigify_meta", dict(tilt=(25.0, 40.0), fingers=False), {}),
    ("vrm0", dict(tilt=(0.0, 180.0), extras=True), {}),
    ("cc", dict(extras=True, root=True, proportions="stylised"), {}),
]


@pytest.mark.parametrize("convention,build,transform", CASES,
                         ids=[f"{c}-{'-'.join(f'{k}={v}' for k, v in b.items())}" for c, b, _ in CASES])
def test_rig_gestures_like_smplx(convention, build, transform):
    _scene()
    bones = humanoid(convention, rng=np.random.default_rng(7), **build)
    obj = build_rig(bones, **transform)
    details = {}
    bone_map, angles, rest, tracks = retarget_and_measure(obj, details=details)
    expected = expected_map(bones)
    got = {role: bone_map.bones_of(role) for role in rigmap.ROLES if bone_map.bones_of(role)}
    assert got == expected
    body, fingers = _split(angles)
    assert body.mean() < 1.0 and np.percentile(body, 95) < 3.0, {k: round(float(v.max()), 2) for k, v in
                                                                  angles.items()}
    if len(fingers):
        assert fingers.mean() < 1.0 and np.percentile(fingers, 95) < 3.0
    # Stylised legs are longer in the shin than the thigh, so the feet trace a slightly different path.
    check_hands_feet_and_flips(bone_map, rest, tracks, details,
                               feet_tolerance=0.06 if build.get("proportions") == "stylised" else 0.01)


def test_rest_pose_rolls_and_a_pose_do_not_change_the_result():
    """The same motion on a T-pose rig and on an A-pose rig with random rolls: same world directions."""
    _scene()
    poses, trans = gesture_motion(FRAMES, seed=5)
    t_rig = build_rig(humanoid("mixamo"), "T")
    a_rig = build_rig(humanoid("mixamo", pose="A", rng=np.random.default_rng(2)), "A", location=(2, 0, 0))
    results = [retarget_and_measure(obj, poses, trans)[1] for obj in (t_rig, a_rig)]
    for label in results[0]:
        assert results[1][label].max() < 0.5, label


def test_root_motion_scaled_by_hip_height_keeps_feet_planted():
    """A long-legged rig: a step of the SMPL-X root moves its hips by the hip-height ratio."""
    _scene()
    obj = build_rig(humanoid("ue5", proportions="stylised"))
    poses = np.zeros((FRAMES, 165))
    trans = np.zeros((FRAMES, 3))
    trans[:, 2] = np.linspace(0.0, 0.5, FRAMES)  # walk 0.5 m forward (SMPL-X +Z)
    trans[:, 1] = np.linspace(0.0, -0.1, FRAMES)  # and crouch 10 cm
    rest = keyframes.read_armature_rest(obj)
    tracks = retarget.retarget_motion(poses, trans, rest)
    keyframes.apply_take(obj, tracks, strip_name="speech", frame_start=1)
    heads = evaluated_heads(obj, ["pelvis", "foot_l", "thigh_l"], [1, FRAMES])
    hip_height_rig = rest.rest_matrices[rest.names.index("pelvis"), 2, 3] - rest.rest_matrices[
        rest.names.index("foot_l"), 2, 3]
    from backend.motion.skeleton import REST_JOINTS
    ratio = hip_height_rig / (REST_JOINTS[0, 1] - REST_JOINTS[7, 1])
    moved = heads["pelvis"][1] - heads["pelvis"][0]
    assert ratio > 1.1  # the legs really are longer
    assert np.allclose(moved, ratio * np.array([0.0, -0.5, -0.1]), atol=1e-4)


def test_unknown_and_partial_rigs_get_one_clear_message():
    _scene()
    # A partial rig: Mixamo names without the right arm.
    bones = [b for b in humanoid("mixamo") if "RightArm" not in b.name and "RightFore" not in b.name
             and "RightHand" not in b.name]
    obj = build_rig(bones, "Partial")
    with pytest.raises(retarget.RetargetError) as error:
        keyframes.read_armature_rest(obj)
    message = str(error.value)
    assert "right upper arm" in message and "right forearm" in message and "right hand" in message
    assert "Bone Map panel" in message and message.count("missing") == 1
    # Not a humanoid at all: a chain of three bones.
    data = bpy.data.armatures.new("Tail")
    tail = bpy.data.objects.new("Tail", data)
    bpy.context.scene.collection.objects.link(tail)
    bpy.context.view_layer.objects.active = tail
    bpy.ops.object.mode_set(mode="EDIT")
    parent = None
    for k in range(3):
        eb = data.edit_bones.new(f"Bone.{k:03d}")
        eb.head, eb.tail, eb.parent = (0, 0, k), (0, 0, k + 1), parent
        parent = eb
    bpy.ops.object.mode_set(mode="OBJECT")
    with pytest.raises(retarget.RetargetError, match="missing essential bones.*pelvis"):
        keyframes.read_armature_rest(tail)


def test_wrong_sides_are_caught_by_the_parent_check():
    """A rig whose 'left' forearm hangs under the right upper arm: the parent check refuses that bone."""
    bones = humanoid("ue5")
    for bone in bones:
        if bone.name == "lowerarm_l":
            bone.parent = "upperarm_r"
    from humanoid_rigs import arrays
    bone_map = rigmap.identify(*arrays(bones))
    assert "left_elbow" not in bone_map.roles
    assert any("lowerarm_l" in note and "not below" in note for note in bone_map.notes)
    assert "left forearm" in rigmap.essential_message("Rig", bone_map)


@pytest.mark.parametrize("convention,build", [("ue5", dict(pose="A")), ("daz8", dict(ring=False, twist=True)),
                                              ("mixamo", dict(fingers=False, extras=True, ends=True))])
def test_structure_search_maps_a_rig_with_meaningless_names(convention, build):
    """COLLADA-converted names ('Skeleton_joint_L__4_') carry no meaning: the structure search maps the rig."""
    _scene()
    bones = humanoid(convention, rng=np.random.default_rng(1), **build)
    renamed = {b.name: f"Skeleton_joint__{k}_" for k, b in enumerate(bones)}
    for bone in bones:
        bone.name, bone.parent = renamed[bone.name], renamed.get(bone.parent) if bone.parent else None
    obj = build_rig(bones, "Anonymous")
    bone_map, angles, _, _ = retarget_and_measure(obj)
    assert bone_map.convention == "structure"
    expected = expected_map(bones)
    got = {role: bone_map.bones_of(role) for role in rigmap.ROLES if bone_map.bones_of(role)}
    assert got == expected
    body, _ = _split(angles)
    assert body.mean() < 1.0


def test_stored_map_wins_and_travels_as_a_preset(tmp_path):
    """The map is stored on the armature, edits take effect, and a preset file maps another rig."""
    _scene()
    first = build_rig(humanoid("mixamo"), "First")
    bone_map = rig.bone_map_for(first)
    # The user swaps the neck for nothing and names a different head bone: the stored map is used.
    bone_map.neck = []
    rig.store_bone_map(first, bone_map)
    assert json.loads(first.data[rig.MAP_PROPERTY])["convention"] == "Mixamo"
    assert rig.bone_map_for(first).neck == []
    rest = keyframes.read_armature_rest(first)
    assert rest.joint_of_bone[rest.names.index("mixamorig:Neck")] == -1
    # Save as a preset, load onto a second rig with the same names.
    preset = tmp_path / "mixamo.json"
    preset.write_text(bone_map.to_json())
    second = build_rig(humanoid("mixamo"), "Second", location=(2, 0, 0))
    rig.store_bone_map(second, rigmap.BoneMap.from_json(preset.read_text()))
    assert rig.bone_map_for(second).pairs() == bone_map.pairs()
    # A preset naming bones the rig does not have is not used (identification runs instead).
    third = build_rig(humanoid("ue5"), "Third", location=(4, 0, 0))
    rig.store_bone_map(third, bone_map)
    assert rig.bone_map_for(third).convention == "Unreal (UE4/UE5)"
    with pytest.raises(ValueError, match="not an ExpGest bone-map preset"):
        rigmap.BoneMap.from_json('{"a": 1}')


def test_rigify_meta_rig_from_rigify_itself():
    """Blender's Rigify Human meta-rig (Rigify ships with Blender): identified and driven."""
    import addon_utils

    _scene()
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    meta = bpy.context.object
    bone_map, angles, _, _ = retarget_and_measure(meta)
    assert bone_map.convention.startswith("Rigify meta-rig")
    assert bone_map.roles["left_wrist"] == "hand.L" and bone_map.spine == ["spine.001", "spine.002", "spine.003"]
    assert bone_map.roles["right_thumb1"] == "thumb.01.R"
    body, fingers = _split(angles)
    assert body.mean() < 1.0 and np.percentile(body, 95) < 3.0
    assert fingers.mean() < 1.5


def test_generated_rigify_rig_keys_fk_controls_and_switches_to_fk():
    """A rig generated by Rigify (Human meta-rig, face left out to keep it fast): FK controls keyed, IK/FK
    switched to FK inside the take, and the deform bones (what the mesh follows) match SMPL-X, fingers too."""
    import addon_utils

    _scene()
    addon_utils.enable("rigify", default_set=True)
    meta, generated = generate_rigify_without_face()
    meta_map = rig.bone_map_for(meta)
    assert generated is not meta
    bone_map, _, rest, tracks = retarget_and_measure(generated)
    assert bone_map.convention.startswith("Rigify generated")
    assert bone_map.roles["left_shoulder"] == "upper_arm_fk.L" and bone_map.roles["pelvis"] == "torso"
    assert not any(name.startswith(("DEF-", "ORG-", "MCH-")) for name in tracks.bone_names)
    assert ("upper_arm_parent.L", "IK_FK", 1.0) in tracks.switches
    assert generated.pose.bones["upper_arm_parent.L"]["IK_FK"] == pytest.approx(1.0)  # evaluated from the take
    # The deform bones follow: measure them, not the controls.
    deform = rigmap.BoneMap({role: "DEF-" + bone for role, bone in meta_map.roles.items()
                             if "DEF-" + bone in generated.data.bones},
                            ["DEF-" + bone for bone in meta_map.spine], ["DEF-" + bone for bone in meta_map.neck])
    poses, trans = gesture_motion(FRAMES, seed=3)
    angles = take_angles(generated, deform, poses, trans, retarget.align_rest_frames(rest).rotation)[0]
    limbs, fingers = _split({k: v for k, v in angles.items() if k != "spine"})
    assert limbs.mean() < 0.5 and limbs.max() < 2.0, {k: round(float(v.max()), 2) for k, v in angles.items()}
    assert len(fingers) and fingers.mean() < 1.0 and np.percentile(fingers, 95) < 3.0, {
        k: round(float(v.max()), 2) for k, v in angles.items()}
    # Rigify's lower spine (below its pivot) moves with the hips: the whole-spine direction is a few degrees off.
    assert angles["spine"].mean() < 8.0


def _delta(obj, name):
    """Armature-space change of a bone from rest, Blender's own evaluation: R(pose) R(rest)^T."""
    pose = np.array(obj.pose.bones[name].matrix, dtype=np.float64)[:3, :3]
    return pose @ np.array(obj.data.bones[name].matrix_local, dtype=np.float64)[:3, :3].T


def _twist_about(reference, moved, axis):
    """Twist angle (rad) about ``axis`` of the rotation ``reference^T moved`` (mathutils quaternion), and its
    swing angle (degrees)."""
    from mathutils import Matrix

    relative = reference.T @ moved
    q = Matrix(relative.tolist()).to_quaternion()
    twist = 2.0 * np.arctan2(np.array(q[1:]) @ axis, q[0])
    twist = (twist + np.pi) % (2 * np.pi) - np.pi
    moved_axis = relative @ axis
    return twist, np.degrees(np.arccos(np.clip(moved_axis @ axis, -1, 1)))


TWIST_SEGMENTS = {  # (main, twist bone, end) of the left upper arm, forearm and thigh
    "ue5": (("upperarm_l", "upperarm_twist_01_l", "lowerarm_l"), ("lowerarm_l", "lowerarm_twist_01_l", "hand_l"),
            ("thigh_l", "thigh_twist_01_l", "calf_l")),
    "daz8": (("lShldrBend", "lShldrTwist", "lForearmBend"), ("lForearmBend", "lForearmTwist", "lHand"),
             ("lThighBend", "lThighTwist", "lShin")),
    "rigify_def": (("DEF-upper_arm.L", "DEF-upper_arm.L.001", "DEF-forearm.L"),
                   ("DEF-forearm.L", "DEF-forearm.L.001", "DEF-hand.L"),
                   ("DEF-thigh.L", "DEF-thigh.L.001", "DEF-shin.L")),
}


@pytest.mark.parametrize("convention", sorted(TWIST_SEGMENTS))
def test_twist_bones_share_the_twist_and_the_hand_still_matches(convention):
    """Upper-arm, forearm and thigh twist bones (UE5/CC-style beside the main bone, Daz/Rigify-style inline)
    turn about their segment by their share of its twist: the forearm's by half the hand's twist, the upper
    arm's and thigh's by half the bone's own twist (an inline main bone gives all of its twist away). The
    hands, forearms and shins keep exactly the orientation they have on the same rig without twist bones."""
    _scene()
    poses, trans = gesture_motion(FRAMES, seed=8)
    obj = build_rig(humanoid(convention, twist=True, thigh_twist=True, rng=np.random.default_rng(3)))
    plain = build_rig(humanoid(convention, rng=np.random.default_rng(3)), "Plain")
    _, angles, rest, tracks = retarget_and_measure(obj, poses, trans)
    retarget_and_measure(plain, poses, trans)
    segments = TWIST_SEGMENTS[convention]
    inline = convention != "ue5"
    for _, twist_bone, _ in segments:
        assert twist_bone in tracks.bone_names
    moved = {}
    for frame in range(1, FRAMES + 1, 3):
        bpy.context.scene.frame_set(frame)
        for index, (main, twist_bone, end) in enumerate(segments):
            axis = np.array(obj.data.bones[end].head_local) - np.array(obj.data.bones[main].head_local)
            axis /= np.linalg.norm(axis)
            d_main, d_twist, d_end = (_delta(obj, n) for n in (main, twist_bone, end))
            # The same end bone on the rig without twist bones: same orientation (the hand still matches).
            assert np.abs(d_end - _delta(plain, end)).max() < 1e-4, (end, frame)
            if index == 1:  # forearm: half the hand's twist relative to the forearm
                total, _ = _twist_about(d_main, d_end, axis)
                bone_twist, swing = _twist_about(d_main, d_twist, axis)
                expected = 0.5 * total
            else:  # upper arm / thigh: its own twist relative to its parent, measured on the plain rig
                parent = obj.pose.bones[main].parent.name
                total, _ = _twist_about(_delta(plain, plain.pose.bones[main].parent.name), _delta(plain, main), axis)
                bone_twist, swing = _twist_about(_delta(obj, parent), d_twist, axis)
                main_twist, _ = _twist_about(_delta(obj, parent), d_main, axis)
                assert main_twist == pytest.approx(0.0 if inline else total, abs=0.01), (main, frame)
                expected = 0.5 * total
                swing = _twist_about(d_main, d_twist, axis)[1]
            assert swing < 0.5, twist_bone  # the twist bone only twists relative to its main bone
            assert bone_twist == pytest.approx(expected, abs=0.01), (twist_bone, frame)
            moved.setdefault(twist_bone, []).append(abs(total))
    for twist_bone, totals in moved.items():
        assert max(totals) > 0.1, twist_bone  # the motion really twists every segment
    body, _ = _split(angles)
    assert body.mean() < 1.0


def _driven_influence(obj, constraint, control, prop):
    """Drive a constraint's influence by a custom property, as Auto-Rig Pro does: influence = switch."""
    fcurve = constraint.driver_add("influence")
    fcurve.driver.type = "AVERAGE"
    variable = fcurve.driver.variables.new()
    variable.type = "SINGLE_PROP"
    variable.targets[0].id = obj
    variable.targets[0].data_path = f'pose.bones["{control}"]["{prop}"]'


def test_auto_rig_pro_keys_fk_controls_and_switches_to_fk():
    """An Auto-Rig Pro-named rig whose mesh bones follow the FK controls only when the IK/FK switch on
    ``c_hand_ik.l``/``c_foot_ik.l`` is 1 (FK), as Auto-Rig Pro wires it: the take keys the FK controls and sets
    the switches to FK inside the take (keys in the take's action, so other takes keep their own setting)."""
    from mathutils import Vector

    _scene()
    bones = humanoid("arp", rng=np.random.default_rng(4))
    obj = build_rig(bones, "ARP")
    bpy.ops.object.mode_set(mode="EDIT")
    edit = obj.data.edit_bones
    for side in ("l", "r"):
        for limb, fk in (("hand", "c_arm_fk"), ("foot", "c_thigh_fk")):
            control = edit[f"{fk}.{side}"]
            ik = edit.new(f"c_{limb}_ik.{side}")  # the IK control, away from the body
            ik.head, ik.tail = control.head + Vector((0.0, 0.5, 0.0)), control.head + Vector((0.0, 0.6, 0.0))
            mesh = edit.new(f"mesh_{limb}.{side}")  # stands for ARP's deform chain
            mesh.head, mesh.tail, mesh.roll = control.head, control.tail, control.roll
            mesh.parent = control.parent
    bpy.ops.object.mode_set(mode="OBJECT")
    for side in ("l", "r"):
        for limb, fk in (("hand", "c_arm_fk"), ("foot", "c_thigh_fk")):
            obj.pose.bones[f"c_{limb}_ik.{side}"]["ik_fk_switch"] = 0.0  # the rig is in IK
            constraint = obj.pose.bones[f"mesh_{limb}.{side}"].constraints.new("COPY_ROTATION")
            constraint.target, constraint.subtarget = obj, f"{fk}.{side}"
            _driven_influence(obj, constraint, f"c_{limb}_ik.{side}", "ik_fk_switch")
    bone_map, angles, rest, tracks = retarget_and_measure(obj)
    assert bone_map.convention.startswith("Auto-Rig Pro")
    assert bone_map.roles["left_shoulder"] == "c_arm_fk.l" and "c_hand_ik.l" not in tracks.bone_names
    for side in ("l", "r"):
        for limb in ("hand", "foot"):
            assert (f"c_{limb}_ik.{side}", "ik_fk_switch", 1.0) in tracks.switches
    body, fingers = _split(angles)
    assert body.mean() < 1.0 and fingers.mean() < 1.0
    # Inside the take the switch evaluates to FK, so the mesh bones turn with the FK controls.
    bpy.context.scene.frame_set(FRAMES // 2)
    assert obj.pose.bones["c_hand_ik.l"]["ik_fk_switch"] == pytest.approx(1.0)
    for mesh, fk in (("mesh_hand.l", "c_arm_fk.l"), ("mesh_foot.r", "c_thigh_fk.r")):
        got = np.array(obj.pose.bones[mesh].matrix)[:3, :3]
        want = np.array(obj.pose.bones[fk].matrix)[:3, :3]
        assert np.abs(got - want).max() < 1e-4, mesh
        assert np.abs(want - np.array(obj.data.bones[fk].matrix_local)[:3, :3]).max() > 0.05  # it moved


def _snake(name):
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _register_vrm_addon_like():
    """Property groups shaped like the VRM add-on's (``armature.vrm_addon_extension``), for a test without it."""
    from bpy.props import CollectionProperty, PointerProperty, StringProperty

    node = type("ExpgestTestVrmNode", (bpy.types.PropertyGroup,), {"__annotations__": {"bone_name": StringProperty()}})
    human0 = type("ExpgestTestVrm0HumanBone", (bpy.types.PropertyGroup,),
                  {"__annotations__": {"bone": StringProperty(), "node": PointerProperty(type=node)}})
    humanoid0 = type("ExpgestTestVrm0Humanoid", (bpy.types.PropertyGroup,),
                     {"__annotations__": {"human_bones": CollectionProperty(type=human0)}})
    vrm0 = type("ExpgestTestVrm0", (bpy.types.PropertyGroup,),
                {"__annotations__": {"humanoid": PointerProperty(type=humanoid0)}})
    from blender_addon.rig import _VRM_HUMAN_BONES

    bones1 = type("ExpgestTestVrm1HumanBones", (bpy.types.PropertyGroup,),
                  {"__annotations__": {name: PointerProperty(type=type(f"ExpgestTestVrm1Bone_{name}", (
                      bpy.types.PropertyGroup,), {"__annotations__": {"node": PointerProperty(type=node)}}))
                      for name in _VRM_HUMAN_BONES}})
    humanoid1 = type("ExpgestTestVrm1Humanoid", (bpy.types.PropertyGroup,),
                     {"__annotations__": {"human_bones": PointerProperty(type=bones1)}})
    vrm1 = type("ExpgestTestVrm1", (bpy.types.PropertyGroup,),
                {"__annotations__": {"humanoid": PointerProperty(type=humanoid1)}})
    extension = type("ExpgestTestVrmExtension", (bpy.types.PropertyGroup,),
                     {"__annotations__": {"vrm0": PointerProperty(type=vrm0), "vrm1": PointerProperty(type=vrm1)}})
    classes = [node, human0, humanoid0, vrm0]
    classes += [bones1.__annotations__[n].keywords["type"] for n in _VRM_HUMAN_BONES]
    classes += [bones1, humanoid1, vrm1, extension]
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Armature.vrm_addon_extension = PointerProperty(type=extension)
    return classes


@pytest.mark.parametrize("source", ["vrm1-extras-json", "vrm0-extras-list", "vrm1-addon", "vrm0-addon"])
def test_vrm_humanoid_table_in_the_file_wins_over_names(source):
    """A VRM avatar whose bone names mean nothing ('Bone.017'), with the humanoid table the file carries: from
    the VRM add-on's data (VRM 1.0 / 0.x) or, imported without it, as a custom property (glTF extras)."""
    import json

    _scene()
    version = "vrm0" if "vrm0" in source else "vrm1"
    bones = humanoid(version, pose="A", extras=True, rng=np.random.default_rng(6))
    renamed = {b.name: f"Bone.{k:03d}" for k, b in enumerate(bones)}
    table = {b.name: renamed[b.name] for b in bones if b.role}
    for bone in bones:
        bone.name, bone.parent = renamed[bone.name], renamed.get(bone.parent) if bone.parent else None
    obj = build_rig(bones, "Avatar")
    classes = []
    try:
        if source == "vrm1-extras-json":
            obj.data["humanBones"] = json.dumps({name: {"node": bone} for name, bone in table.items()})
        elif source == "vrm0-extras-list":
            obj["humanoid"] = json.dumps({"humanBones": [{"bone": n, "node": b} for n, b in table.items()]})
        else:
            classes = _register_vrm_addon_like()
            extension = obj.data.vrm_addon_extension
            for name, bone in table.items():
                if version == "vrm1":
                    getattr(extension.vrm1.humanoid.human_bones, _snake(name)).node.bone_name = bone
                else:
                    entry = extension.vrm0.humanoid.human_bones.add()
                    entry.bone, entry.node.bone_name = name, bone
        bone_map, angles, _, _ = retarget_and_measure(obj)
    finally:
        if classes:
            del bpy.types.Armature.vrm_addon_extension
            for cls in reversed(classes):
                bpy.utils.unregister_class(cls)
    assert bone_map.convention.startswith("VRM humanoid"), bone_map.convention
    expected = expected_map(bones)
    got = {role: bone_map.bones_of(role) for role in rigmap.ROLES if bone_map.bones_of(role)}
    assert got == expected
    body, fingers = _split(angles)
    assert body.mean() < 1.0 and fingers.mean() < 1.0
