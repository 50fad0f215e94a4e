"""Any-rig retargeting: accuracy per rig type, bone identification accuracy, and speed, in real Blender (bpy).

    .venv/blender/bin/python bench/bench_retarget_rigs.py [--minutes 10]

1. Accuracy: for each rig type (rigs built from the SMPL-X rest skeleton in that naming convention, T- and
   A-pose, random bone rolls, other proportions, 1-5 spine bones; the Rigify meta-rig and a generated Rigify
   rig from Rigify itself), a 10 s gesture-like motion is keyed through the add-on's writer and Blender's
   own pose evaluation is compared with SMPL-X forward kinematics: angle between each segment's world
   direction (upper arm, forearm, hand, thigh, shin, foot, collar, spine chain, neck; fingers separately).
   Targets: mean <= 3 deg, p95 <= 8 deg on mapped segments.
2. Identification: fraction of roles mapped to the expected bone over all test rigs, by name tables and,
   with every bone renamed to a meaningless name, by the structure search.
3. Round trips: the same rigs written by Blender's FBX / glTF exporters and read back by its importers
   (root bone, Mixamo's Y-up centimetres at object scale 0.01, tilted bind pose, rotated parent empty).
4. Speed: retarget + keying of ``--minutes`` of motion at 30 fps on a Mixamo rig vs the SMPL-X armature
   (today's path). Target: <= 2x.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="bl_bench_")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "blender")]

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from humanoid_rigs import (  # noqa: E402
    FINGERS,
    arrays,
    expected_map,
    generate_rigify_without_face,
    gesture_motion,
    humanoid,
)
from smplx_oracle import take_angles  # noqa: E402

from blender_addon import keyframes, retarget, rig, rigmap  # noqa: E402

RIGS = {
    "SMPL-X": [("smplx", {})],
    "Mixamo": [("mixamo", dict(ends=True)), ("mixamo", dict(pose="A", spine=2))],
    "Unreal UE5": [("ue5", dict(twist=True, root=True)), ("ue5", dict(pose="A", spine=1, neck=1))],
    "VRM 1.0": [("vrm1", dict(proportions="stylised"))],
    "VRM 0.x": [("vrm0", dict(tilt=(0.0, 180.0)))],
    "VRoid": [("vroid", dict(pose="A"))],
    "Rigify DEF export": [("rigify_def", dict(twist=True))],
    "Character Creator": [("cc", dict(twist=True, pose="A"))],
    "Daz Genesis 8": [("daz8", dict(twist=True))],
    "Auto-Rig Pro": [("arp", dict(pose="A"))],
    "MakeHuman": [("makehuman", dict(spine=5))],
}


def _scene():
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)


def _build(bones, name="Rig"):
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    edit = {}
    for bone in bones:
        eb = data.edit_bones.new(bone.name)
        eb.head, eb.tail, eb.roll = bone.head.tolist(), bone.tail.tolist(), bone.roll
        if bone.parent:
            eb.parent = edit[bone.parent]
        edit[bone.name] = eb
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def _angles(obj, poses, trans, step=5):
    """Key the take and measure it with the tests' own measure (``smplx_oracle.take_angles``)."""
    rest = keyframes.read_armature_rest(obj)
    tracks = retarget.retarget_motion(poses, trans, rest)
    keyframes.apply_take(obj, tracks, strip_name="bench", frame_start=1)
    return take_angles(obj, rig.bone_map_for(obj), poses, trans, retarget.align_rest_frames(rest).rotation,
                       step=step)[0]


def _summary(label, angle_sets):
    body = [v for a in angle_sets for k, v in a.items() if not any(f in k for f in FINGERS)]
    fingers = [v for a in angle_sets for k, v in a.items() if any(f in k for f in FINGERS)]
    body = np.concatenate(body)
    text = f"{label:22s} body mean {body.mean():5.2f}  p95 {np.percentile(body, 95):5.2f}  max {body.max():6.2f}"
    if fingers:
        fingers = np.concatenate(fingers)
        text += f"   fingers mean {fingers.mean():5.2f}  p95 {np.percentile(fingers, 95):5.2f}"
    print(text + "   (deg; target mean <= 3, p95 <= 8)")


def bench_accuracy():
    poses, trans = gesture_motion(300, seed=11)  # 10 s at 30 fps
    for label, variants in RIGS.items():
        sets = []
        for k, (convention, build) in enumerate(variants):
            _scene()
            obj = _build(humanoid(convention, rng=np.random.default_rng(k), **build))
            sets.append(_angles(obj, poses, trans))
        _summary(label, sets)
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    _scene()
    bpy.ops.object.armature_human_metarig_add()
    _summary("Rigify meta-rig", [_angles(bpy.context.object, poses, trans)])
    _scene()
    meta, generated = generate_rigify_without_face()
    meta_map = rig.bone_map_for(meta)
    _summary("Rigify generated (ctrl)", [_angles(generated, poses, trans)])
    # What the mesh follows: the deform bones, measured on the take just keyed.
    deform = rigmap.BoneMap({r: "DEF-" + b for r, b in meta_map.roles.items() if "DEF-" + b in generated.data.bones},
                            ["DEF-" + b for b in meta_map.spine], ["DEF-" + b for b in meta_map.neck])
    _summary("Rigify generated (DEF)", [_deform_angles(generated, deform, poses, trans)])


def _deform_angles(obj, bone_map, poses, trans, step=5):
    rest = keyframes.read_armature_rest(obj)
    return take_angles(obj, bone_map, poses, trans, retarget.align_rest_frames(rest).rotation, step=step)[0]


def bench_identification():
    cases = [(c, b) for variants in RIGS.values() for c, b in variants]
    cases += [(c, dict(fingers=False)) for c in ("mixamo", "ue5", "cc", "daz8", "vroid")]
    cases += [(c, dict(ring=False, extras=True)) for c in ("mixamo", "ue5", "rigify_meta", "vrm1")]
    for mode in ("names", "structure"):
        right = total = rigs_ok = 0
        for convention, build in cases:
            bones = humanoid(convention, **build)
            expected = expected_map(bones)
            names, parents, heads = arrays(bones)
            if mode == "structure":
                renamed = [f"Skeleton_joint__{k}_" for k in range(len(names))]
                back = dict(zip(renamed, names, strict=True))
                found = rigmap.identify(renamed, parents, heads)
                got = {r: [back[b] for b in found.bones_of(r)] for r in rigmap.ROLES}
            else:
                found = rigmap.identify(names, parents, heads)
                got = {r: found.bones_of(r) for r in rigmap.ROLES}
            roles = set(expected) | {r for r, v in got.items() if v}
            hits = sum(expected.get(r) == got.get(r) for r in roles)
            right += hits
            total += len(roles)
            rigs_ok += hits == len(roles)
        print(f"identification by {mode:9s}: {right}/{total} roles right ({100 * right / total:.1f} %), "
              f"{rigs_ok}/{len(cases)} rigs entirely right")


def bench_speed(minutes: float):
    frames = int(minutes * 60 * 30)
    rng = np.random.default_rng(0)
    poses = np.repeat(rng.normal(size=(frames // 30 + 1, 165)) * 0.3, 30, axis=0)[:frames]
    trans = np.zeros((frames, 3))
    times = {}
    for label, convention in (("SMPL-X armature", "smplx"), ("Mixamo rig", "mixamo")):
        _scene()
        obj = _build(humanoid(convention))
        start = time.perf_counter()
        rest = keyframes.read_armature_rest(obj)
        tracks = retarget.retarget_motion(poses, trans, rest)
        keyframes.apply_take(obj, tracks, strip_name="bench", frame_start=1)
        times[label] = time.perf_counter() - start
        print(f"retarget + keys, {minutes:g} min, {label:16s} {times[label]:6.2f} s")
    ratio = times["Mixamo rig"] / times["SMPL-X armature"]
    print(f"ratio Mixamo / SMPL-X: {ratio:.2f} (target <= 2)")


def bench_round_trips():
    """The test rigs written by Blender's FBX / glTF exporters and read back by its importers."""
    from test_rig_import import ROUND_TRIPS, round_trip

    poses, trans = gesture_motion(300, seed=11)
    with tempfile.TemporaryDirectory() as folder:
        for family, fmt, build, setup in ROUND_TRIPS:
            imported, _ = round_trip(Path(folder), family, fmt, build, setup)
            _summary(f"{family} via {fmt}", [_angles(imported, poses, trans)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    bench_identification()
    bench_accuracy()
    bench_round_trips()
    bench_speed(args.minutes)


if __name__ == "__main__":
    main()
