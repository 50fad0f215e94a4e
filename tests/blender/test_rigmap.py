"""Bone identification without Blender (pure numpy): name tables of every rig family, the parent-order
check, the structure search on meaningless names, and the map's JSON form."""

from __future__ import annotations

import numpy as np
import pytest
from humanoid_rigs import CONVENTIONS, arrays, expected_map, humanoid

from blender_addon import rigmap

FAMILY = {"smplx": "SMPL-X", "mixamo": "Mixamo", "ue5": "Unreal (UE4/UE5)", "vrm1": "VRM 1.0", "vrm0": "VRM 0.x",
          "vroid": "VRoid", "rigify_meta": "Rigify meta-rig / Human", "rigify_def": "Rigify meta-rig / Human",
          "rigify_generated": "Rigify generated (FK controls)", "cc": "Character Creator / AccuRIG",
          "cc_old": "Character Creator / AccuRIG", "daz8": "Daz Genesis 8", "daz9": "Daz Genesis 9",
          "arp": "Auto-Rig Pro (FK controls)", "makehuman": "MakeHuman / MPFB"}


def _found(bone_map, rename=None):
    back = rename or {}
    return {role: [back.get(b, b) for b in bone_map.bones_of(role)] for role in rigmap.ROLES
            if bone_map.bones_of(role)}


def test_every_convention_has_a_family():
    assert set(FAMILY) == set(CONVENTIONS)


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
@pytest.mark.parametrize("build", [{}, dict(pose="A", twist=True, ends=True), dict(fingers=False, root=True),
                                   dict(ring=False, extras=True, metacarpals=True)],
                         ids=["T", "A-twist-ends", "no-fingers-root", "no-ring-extras-metacarpals"])
def test_name_tables_identify_every_family(convention, build):
    bones = humanoid(convention, **build)
    bone_map = rigmap.identify(*arrays(bones))
    if convention == "vrm0" and build.get("fingers") is False:  # only the thumbs tell VRM 0.x from 1.0
        assert bone_map.convention in ("VRM 0.x", "VRM 1.0")
    else:
        assert bone_map.convention == FAMILY[convention]
    assert _found(bone_map) == expected_map(bones)
    assert not bone_map.missing()


@pytest.mark.parametrize("convention", ["smplx", "mixamo", "ue5", "rigify_meta", "daz8", "cc", "vrm1"])
@pytest.mark.parametrize("build", [{}, dict(pose="A", ends=True), dict(fingers=False, extras=True),
                                   dict(ring=False, metacarpals=True, spine=1, neck=1),
                                   dict(tilt=(25.0, 140.0), proportions="stylised")],
                         ids=["T", "A-ends", "no-fingers-extras", "no-ring-metacarpal-1spine", "tilted-stylised"])
def test_structure_search_without_names(convention, build):
    if build.get("spine") == 1 and convention in ("smplx", "vrm1", "cc", "rigify_meta"):
        build = {k: v for k, v in build.items() if k not in ("spine", "neck")}
    bones = humanoid(convention, rng=np.random.default_rng(0), **build)
    names, parents, heads = arrays(bones)
    renamed = [f"Skeleton_joint__{k}_" for k in range(len(names))]
    bone_map = rigmap.identify(renamed, parents, heads)
    assert bone_map.convention == "structure"
    assert _found(bone_map, dict(zip(renamed, names, strict=True))) == expected_map(bones)


@pytest.mark.parametrize("name,side,tokens", [
    ("mixamorig:LeftForeArm", "left", ("forearm",)), ("mixamorig1:RightHandThumb2", "right", ("handthumb2",)),
    ("CC_Base_L_Upperarm", "left", ("cc", "base", "upperarm")), ("upper_arm_fk.R", "right", ("upper", "arm", "fk")),
    ("lShldrBend", "left", ("shldrbend",)), ("clavicle_l", "left", ("clavicle",)),
    ("J_Bip_R_Hand", "right", ("j", "bip", "hand")), ("Left Hand", "left", ("hand",)),
    ("c_spine_01.x", "", ("c", "spine", "01")), ("DEF-upper_arm.L.001", "left", ("def", "upper", "arm", "001")),
    ("leftUpperArm", "left", ("upperarm",)), ("Hips", "", ("hips",)), ("Leg", "", ("leg",))])
def test_side_markers_and_separators_are_normalised(name, side, tokens):
    assert rigmap.split_name(name) == (side, tokens)


def test_mixamo_shoulder_is_the_collar_not_the_smplx_upper_arm():
    bone_map = rigmap.identify(*arrays(humanoid("mixamo")))
    assert bone_map.roles["left_collar"] == "mixamorig:LeftShoulder"
    assert bone_map.roles["left_shoulder"] == "mixamorig:LeftArm"


def test_other_prefixes_and_no_prefix_work():
    for prefix in ("", "Armature|", "mixamorig9:", "Character1_"):
        bones = humanoid("mixamo")
        for bone in bones:
            bone.name = prefix + bone.name.split(":")[1]
            bone.parent = prefix + bone.parent.split(":")[1] if bone.parent else None
        bone_map = rigmap.identify(*arrays(bones))
        assert bone_map.convention == "Mixamo" and _found(bone_map) == expected_map(bones), prefix


def test_parent_check_refuses_a_swapped_side_and_the_message_names_it():
    bones = humanoid("daz8")
    for bone in bones:
        if bone.name == "lHand":
            bone.parent = "rForearmBend"
    bone_map = rigmap.identify(*arrays(bones))
    assert "left_wrist" not in bone_map.roles
    message = rigmap.essential_message("Genesis", bone_map)
    assert message.startswith("'Genesis' is missing essential bones for gestures: left hand")


def test_helpers_are_classified():
    assert rigmap.classify_helper("upperarm_twist_01_l") == "twist bone"
    assert rigmap.classify_helper("MCH-thigh_parent.L") == "mechanism"
    assert rigmap.classify_helper("mixamorig:HeadTop_End") == "end marker"
    assert rigmap.classify_helper("Hair_2") == "hair/cloth"


def test_map_json_round_trip_and_errors():
    bone_map = rigmap.identify(*arrays(humanoid("ue5")))
    again = rigmap.BoneMap.from_json(bone_map.to_json())
    assert again.pairs() == bone_map.pairs() and again.spine == bone_map.spine
    with pytest.raises(ValueError, match="not valid JSON"):
        rigmap.BoneMap.from_json("{")
    with pytest.raises(ValueError, match="Unknown role 'elbow'"):
        rigmap.BoneMap.from_pairs([("elbow", "lowerarm_l")])
