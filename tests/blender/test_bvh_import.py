"""Blender's own BVH importer reproduces the backend's forward kinematics of an exported SMPL-X BVH.

Run with the Blender venv: ``/work/venvs/blender/bin/python -m pytest -q tests/blender/test_bvh_import.py``.
The motion modules are numpy-only, so they are imported here directly under Blender's numpy 1.26.

Axis mapping: the file is SMPL-X space (Y up, +Z forward) in centimetres. ``import_anim.bvh`` with its default
axes (``axis_forward='-Z'``, ``axis_up='Y'``) and ``global_scale=0.01`` puts a file point (x, y, z) at Blender
world (x, -z, y) * 0.01 m: Blender's Z is up and the character faces -Y.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from smplx_oracle import TO_BLENDER as SMPLX_TO_BLENDER  # noqa: E402  (mathutils: +90 degrees about X)

from backend.motion.bvh import export_bvh  # noqa: E402
from backend.motion.fk import forward_kinematics  # noqa: E402
from backend.motion.motion import Motion  # noqa: E402
from backend.motion.skeleton import JOINT_NAMES, NUM_JOINTS  # noqa: E402
from tests.backend.bvh_reader import read_bvh  # noqa: E402

pytestmark = pytest.mark.blender

FRAMES, FPS = 48, 30.0


def smooth_random_motion(seed: int = 7) -> Motion:
    """Every joint swings on slow random sines (up to ~70 deg); the pelvis turns half a circle and walks."""
    rng = np.random.default_rng(seed)
    t = np.arange(FRAMES)[:, None] / FPS
    freq = rng.uniform(0.3, 1.2, size=(1, NUM_JOINTS * 3))
    phase = rng.uniform(0.0, 2 * np.pi, size=(1, NUM_JOINTS * 3))
    amp = rng.uniform(0.2, 1.2, size=(1, NUM_JOINTS * 3))
    poses = amp * np.sin(2 * np.pi * freq * t + phase)
    poses[:, 0:3] = np.array([0.3, 1.0, -0.2]) * (np.pi * t / t[-1])  # pelvis: 0 -> ~190 deg about a tilted axis
    trans = np.concatenate([0.4 * np.sin(2 * t), 0.03 * np.cos(5 * t), 0.8 * t], axis=1)
    return Motion(poses=poses, trans=trans, fps=FPS)


@pytest.fixture()
def empty_scene():
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    return bpy.context.scene


@pytest.mark.parametrize("rotate_mode", ["QUATERNION", "NATIVE"])
def test_blender_bvh_import_matches_backend_fk(tmp_path, empty_scene, rotate_mode):
    motion = smooth_random_motion()
    path = export_bvh(motion, tmp_path / "smooth.bvh", units="cm", channel_order="ZYX")
    expected, _ = forward_kinematics(motion.poses, motion.trans)  # (T, 55, 3) metres, SMPL-X axes
    expected_blender = expected @ SMPLX_TO_BLENDER.T

    result = bpy.ops.import_anim.bvh(filepath=str(path), target='ARMATURE', global_scale=0.01, frame_start=1,
                                     rotate_mode=rotate_mode, axis_forward='-Z', axis_up='Y',
                                     update_scene_fps=True, use_fps_scale=False)
    assert result == {'FINISHED'}
    scene = empty_scene
    assert scene.render.fps / scene.render.fps_base == pytest.approx(FPS)
    arm = next(o for o in scene.objects if o.type == 'ARMATURE')
    assert {b.name for b in arm.pose.bones} == set(JOINT_NAMES)
    matrix_world = np.array(arm.matrix_world)

    worst = 0.0
    for frame in range(FRAMES):
        scene.frame_set(frame + 1)  # BVH frame k is Blender frame k + 1
        heads = np.array([tuple(arm.pose.bones[name].head) for name in JOINT_NAMES])
        world = heads @ matrix_world[:3, :3].T + matrix_world[:3, 3]
        worst = max(worst, float(np.abs(world - expected_blender[frame]).max()))
    print(f"{rotate_mode}: max joint position error {worst:.2e} m")
    assert worst < 1e-4, f"max joint position error {worst:.2e} m"

    # the motion is non-trivial: joints travel well beyond the tolerance
    assert np.abs(expected - expected[:1]).max() > 0.5


def test_parsed_file_fk_matches_backend_fk(tmp_path):
    """The generic reader (numpy 1.26 here) agrees with FK of the poses."""
    motion = smooth_random_motion(seed=3)
    data = read_bvh(export_bvh(motion, tmp_path / "a.bvh"))
    pos, _ = data.joint_positions(0.01)
    expected, _ = forward_kinematics(motion.poses, motion.trans)
    order = [data.names.index(n) for n in JOINT_NAMES]
    assert np.abs(pos[:, order] - expected).max() < 1e-6


@pytest.mark.skipif(importlib.util.find_spec("mannequin") is not None, reason="mannequin-x is installed here")
def test_hand_mean_without_mannequin_x_says_how_to_install():
    from backend.errors import WeightsError
    from backend.motion.hands import relaxed_hand_mean

    with pytest.raises(WeightsError, match="pip install mannequin-x"):
        relaxed_hand_mean()


def test_motion_math_runs_under_blenders_numpy():
    """rotations / resample / hands (numpy-only) work under the numpy that bpy pins (1.26)."""
    from backend.motion import rotations as rot
    from backend.motion.hands import relaxed_to_flat
    from backend.motion.resample import num_frames_for, resample_motion

    motion = smooth_random_motion(seed=5)
    out = resample_motion(motion, 23.976)
    assert out.num_frames == num_frames_for(FRAMES / FPS, 23.976) == 38
    m = rot.axis_angle_to_matrix(motion.joint_axis_angles().astype(np.float64))
    for order in ("ZYX", "XZY"):
        back = rot.euler_to_matrix(rot.matrix_to_euler(m, order, degrees=True), order, degrees=True)
        assert np.abs(back - m).max() < 1e-10
    q = rot.quat_continuity(rot.matrix_to_quat(m), axis=0)
    assert np.all(np.sum(q[1:] * q[:-1], axis=-1) >= 0)
    assert np.abs(rot.rot6d_interleaved_to_matrix(rot.matrix_to_rot6d_interleaved(m)) - m).max() < 1e-12
    shifted = relaxed_to_flat(motion.poses, hand_mean=np.ones(90))
    assert np.allclose(shifted[:, 75:] - motion.poses[:, 75:], 1.0)
