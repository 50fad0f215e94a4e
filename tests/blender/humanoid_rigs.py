"""Humanoid test rigs in the naming conventions animators use, built from the SMPL-X rest skeleton (numpy only).

``humanoid(convention, ...)`` returns bones ``(name, parent, head, tail, roll)`` in Blender axes (Z up,
facing -Y) so tests can build them with ``bpy`` and benchmarks can use them without Blender. The naming
below is written for the tests from the conventions' public documentation; it is deliberately not the
add-on's table (``blender_addon/rigmap.py``), so a wrong table entry fails a test.

Variations: A-pose (arms 40 degrees down), other proportions (longer limbs, big head), 1-5 spine and 1-2
neck bones, no fingers / no ring finger, twist bones (child or inline; thighs with ``thigh_twist``), an extra
root bone, end bones, random rolls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.motion.skeleton import JOINT_INDEX, REST_JOINTS

FINGERS = ("thumb", "index", "middle", "ring", "pinky")


# role -> name format; {S} = side word, {s} = one letter; fingers use {F} (finger word) and {k} (1..3).
CONVENTIONS: dict[str, dict] = {
    "smplx": dict(pelvis="pelvis", spine=["spine1", "spine2", "spine3"], neck=["neck"], head="head",
                  collar="{side}_collar", shoulder="{side}_shoulder", elbow="{side}_elbow", wrist="{side}_wrist",
                  hip="{side}_hip", knee="{side}_knee", ankle="{side}_ankle", foot="{side}_foot",
                  finger="{side}_{F}{k}", words={}),
    "mixamo": dict(pelvis="mixamorig:Hips", spine=["mixamorig:Spine", "mixamorig:Spine1", "mixamorig:Spine2",
                                                   "mixamorig:Spine3", "mixamorig:Spine4"],
                   neck=["mixamorig:Neck", "mixamorig:Neck1"], head="mixamorig:Head",
                   collar="mixamorig:{Side}Shoulder", shoulder="mixamorig:{Side}Arm",
                   elbow="mixamorig:{Side}ForeArm", wrist="mixamorig:{Side}Hand", hip="mixamorig:{Side}UpLeg",
                   knee="mixamorig:{Side}Leg", ankle="mixamorig:{Side}Foot", foot="mixamorig:{Side}ToeBase",
                   finger="mixamorig:{Side}Hand{Fw}{k}", words={}, head_end="mixamorig:HeadTop_End",
                   finger_end="mixamorig:{Side}Hand{Fw}4"),
    "ue5": dict(pelvis="pelvis", spine=[f"spine_0{k}" for k in range(1, 6)], neck=["neck_01", "neck_02"],
                head="head", collar="clavicle_{s}", shoulder="upperarm_{s}", elbow="lowerarm_{s}", wrist="hand_{s}",
                hip="thigh_{s}", knee="calf_{s}", ankle="foot_{s}", foot="ball_{s}", finger="{F}_0{k}_{s}", words={},
                twist="upperarm_twist_01_{s}", fore_twist="lowerarm_twist_01_{s}", root="root",
                thigh_twist="thigh_twist_01_{s}"),
    "vrm1": dict(pelvis="hips", spine=["spine", "chest", "upperChest"], neck=["neck"], head="head",
                 collar="{side}Shoulder", shoulder="{side}UpperArm", elbow="{side}LowerArm", wrist="{side}Hand",
                 hip="{side}UpperLeg", knee="{side}LowerLeg", ankle="{side}Foot", foot="{side}Toes",
                 finger="{side}{Fw}{ph}", words={"pinky": "Little"}),
    "vrm0": dict(pelvis="hips", spine=["spine", "chest", "upperChest"], neck=["neck"], head="head",
                 collar="{side}Shoulder", shoulder="{side}UpperArm", elbow="{side}LowerArm", wrist="{side}Hand",
                 hip="{side}UpperLeg", knee="{side}LowerLeg", ankle="{side}Foot", foot="{side}Toes",
                 finger="{side}{Fw}{ph}", words={"pinky": "Little"}, vrm0=True),
    "vroid": dict(pelvis="J_Bip_C_Hips", spine=["J_Bip_C_Spine", "J_Bip_C_Chest", "J_Bip_C_UpperChest"],
                  neck=["J_Bip_C_Neck"], head="J_Bip_C_Head", collar="J_Bip_{S}_Shoulder",
                  shoulder="J_Bip_{S}_UpperArm", elbow="J_Bip_{S}_LowerArm", wrist="J_Bip_{S}_Hand",
                  hip="J_Bip_{S}_UpperLeg", knee="J_Bip_{S}_LowerLeg", ankle="J_Bip_{S}_Foot",
                  foot="J_Bip_{S}_ToeBase", finger="J_Bip_{S}_{Fw}{k}", words={"pinky": "Little"}),
    "rigify_meta": dict(pelvis="spine", spine=["spine.001", "spine.002", "spine.003"], neck=["spine.004", "spine.005"],
                        head="spine.006", collar="shoulder.{S}", shoulder="upper_arm.{S}", elbow="forearm.{S}",
                        wrist="hand.{S}", hip="thigh.{S}", knee="shin.{S}", ankle="foot.{S}", foot="toe.{S}",
                        finger="f_{F}.0{k}.{S}", words={}, thumb="thumb.0{k}.{S}"),
    "rigify_def": dict(pelvis="DEF-spine", spine=["DEF-spine.001", "DEF-spine.002", "DEF-spine.003"],
                       neck=["DEF-spine.004", "DEF-spine.005"], head="DEF-spine.006", collar="DEF-shoulder.{S}",
                       shoulder="DEF-upper_arm.{S}", elbow="DEF-forearm.{S}", wrist="DEF-hand.{S}",
                       hip="DEF-thigh.{S}", knee="DEF-shin.{S}", ankle="DEF-foot.{S}", foot="DEF-toe.{S}",
                       finger="DEF-f_{F}.0{k}.{S}", words={}, thumb="DEF-thumb.0{k}.{S}",
                       inline_twist="DEF-upper_arm.{S}.001", inline_fore_twist="DEF-forearm.{S}.001",
                       inline_thigh_twist="DEF-thigh.{S}.001"),
    "cc": dict(pelvis="CC_Base_Hip", spine=["CC_Base_Waist", "CC_Base_Spine01", "CC_Base_Spine02"],
               neck=["CC_Base_NeckTwist01", "CC_Base_NeckTwist02"], head="CC_Base_Head",
               collar="CC_Base_{S}_Clavicle", shoulder="CC_Base_{S}_Upperarm", elbow="CC_Base_{S}_Forearm",
               wrist="CC_Base_{S}_Hand", hip="CC_Base_{S}_Thigh", knee="CC_Base_{S}_Calf", ankle="CC_Base_{S}_Foot",
               foot="CC_Base_{S}_ToeBase", finger="CC_Base_{S}_{Fw}{k}", words={"pinky": "Pinky"},
               leg_parent="CC_Base_Pelvis", twist="CC_Base_{S}_UpperarmTwist01",
               fore_twist="CC_Base_{S}_ForearmTwist01", thigh_twist="CC_Base_{S}_ThighTwist01"),
    "daz8": dict(pelvis="hip", spine=["abdomenLower", "abdomenUpper", "chestLower", "chestUpper"],
                 neck=["neckLower", "neckUpper"], head="head", collar="{s}Collar", shoulder="{s}ShldrBend",
                 elbow="{s}ForearmBend", wrist="{s}Hand", hip="{s}ThighBend", knee="{s}Shin", ankle="{s}Foot",
                 foot="{s}Toe", finger="{s}{Fw}{k}", words={"middle": "Mid"}, leg_parent="pelvis",
                 inline_twist="{s}ShldrTwist", inline_fore_twist="{s}ForearmTwist",
                 inline_thigh_twist="{s}ThighTwist"),
    "rigify_generated": dict(pelvis="torso", spine=["spine_fk.002", "spine_fk.003"], neck=["neck"], head="head",
                             collar="shoulder.{S}", shoulder="upper_arm_fk.{S}", elbow="forearm_fk.{S}",
                             wrist="hand_fk.{S}", hip="thigh_fk.{S}", knee="shin_fk.{S}", ankle="foot_fk.{S}",
                             foot="toe_fk.{S}", finger="f_{F}.0{k}.{S}", words={}, thumb="thumb.0{k}.{S}"),
    "arp": dict(pelvis="c_root.x", spine=["c_spine_01.x", "c_spine_02.x", "c_spine_03.x"], neck=["c_neck.x"],
                head="c_head.x", collar="c_shoulder.{s}", shoulder="c_arm_fk.{s}", elbow="c_forearm_fk.{s}",
                wrist="c_hand_fk.{s}", hip="c_thigh_fk.{s}", knee="c_leg_fk.{s}", ankle="c_foot_fk.{s}",
                foot="c_toes_fk.{s}", finger="c_{F}{k}.{s}", words={}),
    "makehuman": dict(pelvis="root", spine=["spine05", "spine04", "spine03", "spine02", "spine01"],
                      neck=["neck01", "neck02", "neck03"], head="head", collar="clavicle.{S}",
                      shoulder="upperarm01.{S}", elbow="lowerarm01.{S}", wrist="wrist.{S}", hip="upperleg01.{S}",
                      knee="lowerleg01.{S}", ankle="foot.{S}", foot="toe1-1.{S}", finger="finger{n}-{k}.{S}",
                      words={}),
    "cc_old": dict(pelvis="CC_Base_Hip", spine=["CC_Base_Waist", "CC_Base_Spine01", "CC_Base_Spine02"],
                   neck=["CC_Base_NeckTwist01"], head="CC_Base_Head", collar="CC_Base_{S}_Clavicle",
                   shoulder="CC_Base_{S}_Upperarm", elbow="CC_Base_{S}_Forearm", wrist="CC_Base_{S}_Hand",
                   hip="CC_Base_{S}_Thigh", knee="CC_Base_{S}_Calf", ankle="CC_Base_{S}_Foot",
                   foot="CC_Base_{S}_ToeBase", finger="CC_Base_{S}_Finger{n0}{k0}", words={},
                   leg_parent="CC_Base_Pelvis"),
    "daz9": dict(pelvis="hip", spine=["spine1", "spine2", "spine3", "spine4"], neck=["neck1", "neck2"], head="head",
                 collar="{s}_shoulder", shoulder="{s}_upperarm", elbow="{s}_forearm", wrist="{s}_hand",
                 hip="{s}_thigh", knee="{s}_shin", ankle="{s}_foot", foot="{s}_toes", finger="{s}_{Fw}{k}",
                 words={"middle": "mid"}, leg_parent="pelvis"),
}
VRM_PHALANGES = {1: "Proximal", 2: "Intermediate", 3: "Distal"}
VRM_THUMB = {1: "Metacarpal", 2: "Proximal", 3: "Distal"}


@dataclass
class Bone:
    name: str
    parent: str | None
    head: np.ndarray
    tail: np.ndarray
    roll: float = 0.0
    role: str = ""  # what the test expects the identification to find ("" = helper)


def _blender(point):
    point = np.asarray(point, dtype=np.float64)
    return np.array([point[0], -point[2], point[1]])


def _name(conv: dict, role: str, side: str = "", finger: str = "", k: int = 0, key: str | None = None) -> str:
    fmt = conv[key or role]
    word = conv["words"].get(finger, finger.capitalize())
    phalanx = (VRM_THUMB if finger == "thumb" and not conv.get("vrm0") else VRM_PHALANGES).get(k, "")
    if finger == "thumb" and "thumb" in conv and key is None:
        fmt = conv["thumb"]
    n = FINGERS.index(finger) if finger in FINGERS else 0
    return fmt.format(side=side, Side=side.capitalize(), S="L" if side == "left" else "R",
                      s="l" if side == "left" else "r", F=finger, Fw=word, k=k, ph=phalanx, n=n + 1, n0=n,
                      k0=k - 1)


def humanoid(convention: str, *, pose: str = "T", spine: int | None = None, neck: int | None = None,
             fingers: bool = True, ring: bool = True, twist: bool = False, root: bool = False, ends: bool = False,
             proportions: str = "smplx", rng: np.random.Generator | None = None,
             tilt: tuple[float, float] | None = None, extras: bool = False,
             metacarpals: bool = False, thigh_twist: bool = False) -> list[Bone]:
    """The bones of one test rig, parents first (Blender axes, metres)."""
    conv = CONVENTIONS[convention]
    joints = _posed_joints(proportions, pose)
    bones: list[Bone] = []
    pelvis, chest, head = _torso(bones, conv, convention, joints, spine, neck, root, ends)
    for side in ("left", "right"):
        hand = _arm(bones, conv, joints, side, chest, twist, fingers)
        if fingers:
            _fingers(bones, conv, joints, side, hand, ring=ring, metacarpals=metacarpals, ends=ends)
        _leg(bones, conv, joints, side, pelvis, thigh_twist)
    if extras:
        _extras(bones, conv, joints, head, pelvis)
    if rng is not None:
        for bone in bones:
            bone.roll = float(rng.uniform(-np.pi, np.pi))
    if tilt is not None:  # a bind pose that is not upright: tilted back about X, then yawed about Z (degrees)
        back, yaw = np.radians(tilt[0]), np.radians(tilt[1])
        rx = np.array([[1, 0, 0], [0, np.cos(back), -np.sin(back)], [0, np.sin(back), np.cos(back)]])
        rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
        for bone in bones:
            bone.head, bone.tail = rz @ rx @ bone.head, rz @ rx @ bone.tail
    return bones


def _posed_joints(proportions: str, pose: str) -> dict[str, np.ndarray]:
    """SMPL-X rest joints in Blender axes, with the ``stylised`` proportions and the A-pose applied if asked."""
    joints = {name: _blender(REST_JOINTS[index]) for name, index in JOINT_INDEX.items()}
    if proportions == "stylised":  # longer arms and legs, a big head, a shorter torso
        pelvis = joints["pelvis"].copy()
        for name in joints:
            p = joints[name] - pelvis
            if name.startswith(("left_", "right_")) and any(w in name for w in ("hip", "knee", "ankle", "foot")):
                p = p * np.array([1.1, 1.0, 1.25])
            joints[name] = pelvis + p
        for side in ("left", "right"):
            base = joints[f"{side}_shoulder"].copy()
            for name in _arm_joints(joints, side):
                joints[name] = base + (joints[name] - base) * 1.2
    if pose == "A":  # arms 40 degrees down, about the forward axis at the shoulder
        for side, sign in (("left", -1.0), ("right", 1.0)):
            angle = np.radians(40.0) * sign
            c, s = np.cos(angle), np.sin(angle)
            rot = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])  # about Y (Blender's forward axis)
            base = joints[f"{side}_shoulder"].copy()
            for name in _arm_joints(joints, side):
                joints[name] = base + rot @ (joints[name] - base)
    return joints


def _arm_joints(joints: dict[str, np.ndarray], side: str) -> list[str]:
    """The joints of one side below the shoulder: elbow, wrist and fingers."""
    return [name for name in joints
            if name.startswith(side) and any(w in name for w in ("elbow", "wrist", *FINGERS))]


def _add(bones: list[Bone], name: str, parent: str | None, head, tail, role: str = "") -> str:
    bones.append(Bone(name, parent, np.asarray(head, float), np.asarray(tail, float), 0.0, role))
    return name


def _torso(bones: list[Bone], conv: dict, convention: str, joints, spine: int | None, neck: int | None,
           root: bool, ends: bool) -> tuple[str, str, str]:
    """An optional root, the pelvis, ``spine`` spine bones, ``neck`` neck bones and the head (with its end bone
    when ``ends``). Returns the names of the pelvis, the top spine bone (the chest) and the head."""
    spine_count = spine or {"mixamo": 3}.get(convention, len(conv["spine"]))
    neck_count = neck if neck is not None else len(conv["neck"])
    spine_names = conv["spine"][:spine_count] if spine_count <= len(conv["spine"]) else \
        [conv["spine"][0] + f"_{k}" for k in range(spine_count)]
    top = None
    if root:
        top = _add(bones, conv.get("root", "root" if conv["pelvis"] != "root" else "master"), None, [0, 0, 0],
                   [0, 0.0, 0.2])
    pelvis = _add(bones, conv["pelvis"], top, joints["pelvis"], joints["spine1"], "pelvis")
    if spine_count == 3:
        points = [joints["spine1"], joints["spine2"], joints["spine3"], joints["neck"]]
    else:
        points = _spine_points(joints, spine_count)
    parent = pelvis
    for k in range(spine_count):
        parent = _add(bones, spine_names[k], parent, points[k], points[k + 1], "spine")
    chest = parent
    neck_points = [joints["neck"] + (joints["head"] - joints["neck"]) * k / max(neck_count, 1)
                   for k in range(neck_count + 1)]
    for k in range(neck_count):
        parent = _add(bones, conv["neck"][k], parent, neck_points[k], neck_points[k + 1], "neck")
    head = _add(bones, conv["head"], parent, joints["head"], joints["head"] + np.array([0, 0, 0.2]), "head")
    if ends and "head_end" in conv:
        _add(bones, conv["head_end"], head, joints["head"] + np.array([0, 0, 0.2]),
             joints["head"] + np.array([0, 0, 0.3]))
    return pelvis, chest, head


def _spine_points(joints, spine_count: int) -> list[np.ndarray]:
    """``spine_count + 1`` points evenly spaced along spine1 -> spine2 -> spine3 -> neck."""
    polyline = np.array([joints["spine1"], joints["spine2"], joints["spine3"], joints["neck"]])
    lengths = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
    cumulative = np.r_[0.0, np.cumsum(lengths)]

    def along(fraction):
        distance = fraction * cumulative[-1]
        k = min(int(np.searchsorted(cumulative, distance, side="right")) - 1, len(lengths) - 1)
        w = (distance - cumulative[k]) / lengths[k]
        return polyline[k] + w * (polyline[k + 1] - polyline[k])

    return [along(k / spine_count) for k in range(spine_count + 1)]


def _limb_segment(bones: list[Bone], conv: dict, side: str, parent: str, start, end, inline_key: str,
                  child_key: str, enabled: bool) -> str:
    """With ``enabled``, a twist bone on the segment just added (``start`` -> ``end``): ``inline_key`` splits it
    at the middle (the next segment hangs from the twist), ``child_key`` adds a child from the middle.
    Returns the parent of the next segment."""
    mid = 0.5 * (start + end)
    if enabled and inline_key in conv:
        bones[-1].tail = mid
        return _add(bones, _name(conv, inline_key, side, key=inline_key), parent, mid, end)
    if enabled and child_key in conv:
        _add(bones, _name(conv, child_key, side, key=child_key), parent, mid, end)
    return parent


def _arm(bones: list[Bone], conv: dict, joints, side: str, chest: str, twist: bool, fingers: bool) -> str:
    """Collar, upper arm, forearm (with twist bones when ``twist``) and the hand, which reaches further when
    there are no fingers. Returns the hand's name."""
    j = {name: joints[f"{side}_{name}"] for name in ("collar", "shoulder", "elbow", "wrist", "middle1")}
    collar = _add(bones, _name(conv, "collar", side), chest, j["collar"], j["shoulder"], f"{side}_collar")
    upper = _add(bones, _name(conv, "shoulder", side), collar, j["shoulder"], j["elbow"], f"{side}_shoulder")
    fore_parent = _limb_segment(bones, conv, side, upper, j["shoulder"], j["elbow"], "inline_twist", "twist", twist)
    fore = _add(bones, _name(conv, "elbow", side), fore_parent, j["elbow"], j["wrist"], f"{side}_elbow")
    hand_parent = _limb_segment(bones, conv, side, fore, j["elbow"], j["wrist"], "inline_fore_twist", "fore_twist",
                                twist)
    hand_tail = j["middle1"] if fingers else j["wrist"] + 1.4 * (j["middle1"] - j["wrist"])
    return _add(bones, _name(conv, "wrist", side), hand_parent, j["wrist"], hand_tail, f"{side}_wrist")


def _fingers(bones: list[Bone], conv: dict, joints, side: str, hand: str, *, ring: bool, metacarpals: bool,
             ends: bool) -> None:
    """Three-bone finger chains under ``hand`` (without the ring finger unless ``ring``), with metacarpals
    and end bones on request."""
    wrist = joints[f"{side}_wrist"]
    for finger in FINGERS:
        if finger == "ring" and not ring:
            continue
        parent = hand
        if metacarpals and finger != "thumb":  # UE5 / MetaHuman: a metacarpal from the hand
            knuckle = joints[f"{side}_{finger}1"]
            parent = _add(bones, f"{finger}_metacarpal_{'l' if side == 'left' else 'r'}", hand,
                          wrist + 0.15 * (knuckle - wrist), knuckle)
        for k in (1, 2, 3):
            joint = joints[f"{side}_{finger}{k}"]
            following = joints[f"{side}_{finger}{k + 1}"] if k < 3 else \
                joint + 0.8 * (joint - joints[f"{side}_{finger}{k - 1}"])
            parent = _add(bones, _name(conv, "finger", side, finger, k), parent, joint, following,
                          f"{side}_{finger}{k}")
        if ends and "finger_end" in conv:
            joint = joints[f"{side}_{finger}3"]
            tip = joint + 0.8 * (joint - joints[f"{side}_{finger}2"])
            _add(bones, _name(conv, "finger_end", side, finger, 4, key="finger_end"), parent, tip,
                 tip + 0.5 * (joint - joints[f"{side}_{finger}2"]))


def _leg(bones: list[Bone], conv: dict, joints, side: str, pelvis: str, thigh_twist: bool) -> None:
    """Thigh (under the convention's intermediate pelvis bone if it has one; twist bones when
    ``thigh_twist``), shin, foot and toes."""
    j = {name: joints[f"{side}_{name}"] for name in ("hip", "knee", "ankle", "foot")}
    leg_parent = pelvis
    if "leg_parent" in conv:
        leg_parent = next((b.name for b in bones if b.name == conv["leg_parent"]), None) or _add(
            bones, conv["leg_parent"], pelvis, joints["pelvis"], joints["pelvis"] - np.array([0, 0, 0.1]))
    thigh = _add(bones, _name(conv, "hip", side), leg_parent, j["hip"], j["knee"], f"{side}_hip")
    shin_parent = _limb_segment(bones, conv, side, thigh, j["hip"], j["knee"], "inline_thigh_twist", "thigh_twist",
                                thigh_twist)
    shin = _add(bones, _name(conv, "knee", side), shin_parent, j["knee"], j["ankle"], f"{side}_knee")
    foot = _add(bones, _name(conv, "ankle", side), shin, j["ankle"], j["foot"], f"{side}_ankle")
    _add(bones, _name(conv, "foot", side), foot, j["foot"], j["foot"] + np.array([0.0, -0.06, 0.0]),
         f"{side}_foot")


def _extras(bones: list[Bone], conv: dict, joints, head: str, pelvis: str) -> None:
    """Bones no role should take: hair under the head, a skirt under the pelvis, a prop in the right hand."""
    up = np.array([0.0, 0.0, 1.0])
    parent = head
    for k in range(3):
        start = joints["head"] + np.array([0.0, 0.08, 0.15 - 0.08 * k])
        parent = _add(bones, f"Hair_{k}", parent, start, start + np.array([0.0, 0.02, -0.08]))
    parent = pelvis
    for k in range(3):
        start = joints["pelvis"] + np.array([0.0, -0.12, -0.1 * k])
        parent = _add(bones, f"Skirt_front_{k}", parent, start, start - 0.1 * up)
    hand = _name(conv, "wrist", "right")
    _add(bones, "Prop_weapon", hand, joints["right_wrist"] + np.array([0, -0.05, 0]),
         joints["right_wrist"] + np.array([0, -0.05, 0.3]))


def expected_map(bones: list[Bone]) -> dict[str, list[str]]:
    """role -> bone names the identification should find."""
    out: dict[str, list[str]] = {}
    for bone in bones:
        if bone.role:
            out.setdefault(bone.role, []).append(bone.name)
    return out


def arrays(bones: list[Bone]):
    """(names, parents, heads) for ``rigmap.identify``."""
    names = [b.name for b in bones]
    index = {n: i for i, n in enumerate(names)}
    parents = [index[b.parent] if b.parent else -1 for b in bones]
    return names, parents, np.array([b.head for b in bones])


def segments(bone_map) -> list[tuple[str, str, str, str, str]]:
    """(label, rig from-bone, rig to-bone, SMPL-X from-joint, SMPL-X to-joint) for every mapped segment."""
    out = []
    roles = bone_map.roles
    spine, neck = list(bone_map.spine), list(bone_map.neck)
    top = neck[0] if neck else roles.get("head")
    if spine and top:
        out.append(("spine", spine[0], top, "spine1", "neck"))
    if neck and "head" in roles:
        out.append(("neck", neck[0], roles["head"], "neck", "head"))
    for side in ("left", "right"):
        for a, b in (("collar", "shoulder"), ("shoulder", "elbow"), ("elbow", "wrist"), ("wrist", "middle1"),
                     ("hip", "knee"), ("knee", "ankle"), ("ankle", "foot")):
            ra, rb = f"{side}_{a}", f"{side}_{b}"
            if ra in roles and rb in roles:
                out.append((ra, roles[ra], roles[rb], ra, rb))
        for finger in FINGERS:
            for k in (1, 2):
                ra, rb = f"{side}_{finger}{k}", f"{side}_{finger}{k + 1}"
                if ra in roles and rb in roles:
                    out.append((ra, roles[ra], roles[rb], ra, rb))
    return out


def segment_angles(bone_map, rig_heads: dict[str, np.ndarray], smplx_world: np.ndarray) -> dict[str, np.ndarray]:
    """Per segment, (T,) angles in degrees between the rig's and the SMPL-X world directions.

    Args:
        bone_map: the rig's map.
        rig_heads: bone name -> (T, 3) evaluated world heads (Blender's own pose evaluation).
        smplx_world: (T, 55, 3) SMPL-X forward kinematics already placed in the rig's world frame.
    """
    out = {}
    for label, rig_a, rig_b, ja, jb in segments(bone_map):
        got = rig_heads[rig_b] - rig_heads[rig_a]
        want = smplx_world[:, JOINT_INDEX[jb]] - smplx_world[:, JOINT_INDEX[ja]]
        cos = (got * want).sum(-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(want, axis=-1) + 1e-300)
        out[label] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return out


def gesture_motion(frames: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth, gesture-like SMPL-X motion (body, arms and fingers moving; root drifting)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 2.0 * np.pi, frames)[:, None]
    amplitude = np.full(165, 0.25)
    amplitude[:3] = 0.15
    amplitude[16 * 3:22 * 3] = 0.6  # shoulders, elbows, wrists
    amplitude[25 * 3:] = 0.35  # fingers
    phase = rng.uniform(0, 2 * np.pi, 165)
    speed = rng.integers(1, 3, 165)
    poses = amplitude * np.sin(speed * t + phase) + rng.normal(0, 0.05, 165)
    trans = np.stack([0.1 * np.sin(t[:, 0]), 0.02 * np.sin(2 * t[:, 0]), 0.05 * np.cos(t[:, 0])], axis=1)
    return poses, trans


_RIGIFY_FACE = ("face", "nose", "lip", "jaw", "ear", "brow", "lid", "cheek", "forehead", "temple", "chin", "tongue",
                "teeth", "eye")


def generate_rigify_without_face():
    """Rigify's Human meta-rig without its face bones (they only slow generation down), and the rig Rigify
    generates from it: ``(meta, generated)``. Needs bpy with the rigify add-on enabled (imported here, so the
    rest of this module stays usable without Blender)."""
    import bpy

    bpy.ops.object.armature_human_metarig_add()
    meta = bpy.context.object
    bpy.ops.object.mode_set(mode="EDIT")
    for bone in list(meta.data.edit_bones):
        if bone.name.startswith(_RIGIFY_FACE):
            meta.data.edit_bones.remove(bone)
    bpy.ops.object.mode_set(mode="OBJECT")
    bpy.ops.pose.rigify_generate()
    return meta, bpy.context.object
