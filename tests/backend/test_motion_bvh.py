"""BVH: SMPL-X export, generic reader/writer, round trips through forward kinematics, the ExpGest BVH fixture."""

from __future__ import annotations

import os

import numpy as np
import pytest

from backend.errors import OutputError
from backend.motion.bvh import export_bvh, write_bvh
from backend.motion.fk import forward_kinematics
from backend.motion.motion import Motion
from backend.motion.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, REST_JOINTS
from tests.backend.bvh_reader import BvhFormatError, bvh_to_motion, parse_bvh, read_bvh


def smooth_motion(frames: int = 40, fps: float = 30.0, seed: int = 0, amplitude: float = 0.8) -> Motion:
    """Random but smooth: each joint's axis-angle is a sum of low-frequency sines; the root walks."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / fps
    freq = rng.uniform(0.2, 1.5, size=(1, 165))
    phase = rng.uniform(0, 2 * np.pi, size=(1, 165))
    poses = amplitude * rng.uniform(0.2, 1.0, size=(1, 165)) * np.sin(2 * np.pi * freq * t + phase)
    poses[:, :3] += np.array([0.0, 1.0, 0.0]) * 2.5 * t[:, 0:1] / t[-1, 0]  # pelvis turns ~143 deg about Y
    trans = np.concatenate([np.sin(t), 0.05 * np.cos(3 * t), 0.5 * t], axis=1)
    return Motion(poses=poses, trans=trans, fps=fps)


def fk_of_bvh(path, scale: float) -> tuple[list[str], np.ndarray]:
    data = read_bvh(path)
    pos, _ = data.joint_positions(scale)
    return data.names, pos


@pytest.mark.parametrize("units,scale", [("cm", 0.01), ("m", 1.0)])
@pytest.mark.parametrize("order", ["ZYX", "ZXY", "XYZ"])
def test_round_trip_joint_positions(tmp_path, units, scale, order):
    motion = smooth_motion()
    path = export_bvh(motion, tmp_path / "take.bvh", units=units, channel_order=order)
    names, pos = fk_of_bvh(path, scale)
    expected, _ = forward_kinematics(motion.poses, motion.trans)
    index = [names.index(n) for n in JOINT_NAMES]
    err = np.abs(pos[:, index] - expected).max()
    assert err < 1e-4, err
    assert err < 1e-6  # 6 decimals in cm are 1e-8 m; float32 poses dominate


def test_file_structure(tmp_path):
    motion = smooth_motion(frames=7, fps=23.976)
    path = export_bvh(motion, tmp_path / "take.bvh")
    data = read_bvh(path)
    assert set(data.names) == set(JOINT_NAMES) and len(data.names) == NUM_JOINTS
    assert data.num_frames == 7
    assert data.frame_time == pytest.approx(1 / 23.976, abs=1e-8)
    assert data.channels[0] == ("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation")
    assert all(c == ("Zrotation", "Yrotation", "Xrotation") for c in data.channels[1:])
    # parents agree with SMPL-X (by name), OFFSETs are the rest offsets in centimetres
    for j, name in enumerate(data.names):
        smplx = JOINT_NAMES.index(name)
        parent = PARENTS[smplx]
        assert (data.parents[j] == -1) if parent < 0 else (data.names[data.parents[j]] == JOINT_NAMES[parent])
        rest = REST_JOINTS[smplx] - (REST_JOINTS[parent] if parent >= 0 else 0.0)
        np.testing.assert_allclose(data.offsets[j], rest * 100.0, atol=1e-6)
    leaves = {JOINT_NAMES[j] for j in range(NUM_JOINTS) if j not in PARENTS}
    assert {data.names[j] for j in data.end_sites} == leaves
    assert all(np.linalg.norm(v) > 0.5 for v in data.end_sites.values())  # visible bone tails (cm)
    # root position channels are the pelvis world position
    np.testing.assert_allclose(data.frames[:, :3], (REST_JOINTS[0] + motion.trans) * 100.0, atol=1e-5)
    assert not [p for p in os.listdir(tmp_path) if p != "take.bvh"]  # no temporary left behind


def test_bvh_to_motion_round_trip(tmp_path):
    motion = smooth_motion(seed=3, amplitude=1.5)
    back = bvh_to_motion(read_bvh(export_bvh(motion, tmp_path / "a.bvh")))
    assert back.fps == pytest.approx(motion.fps, rel=1e-7)
    np.testing.assert_allclose(back.trans, motion.trans, atol=1e-6)
    a, _ = forward_kinematics(back.poses, back.trans)
    b, _ = forward_kinematics(motion.poses, motion.trans)
    np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(BvhFormatError, match="not SMPL-X"):
        bvh_to_motion(parse_bvh(SMALL_BVH))


SMALL_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Left Leg
  {
    OFFSET 10 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -5 0
    }
  }
  JOINT Spine
  {
    OFFSET 0 10 0
    CHANNELS 1 Xrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.04
1 2 3 0 0 0 90 0 0 0
0 0 0 0 90 0 0 0 0 90
"""


def test_read_generic_file():
    data = parse_bvh(SMALL_BVH)
    assert data.names == ["Hips", "Left_Leg", "Spine"]  # spaces in names become underscores (as Blender does)
    assert data.parents == [-1, 0, 0]
    assert data.channels[2] == ("Xrotation",)
    assert data.frames.shape == (2, 10) and data.fps == pytest.approx(25.0)
    np.testing.assert_allclose(data.end_sites[1], [0, -5, 0])
    pos, _ = data.joint_positions()
    # frame 0: root at (1, 2, 3), no root rotation; Left_Leg local Z 90 does not move the leg's own head
    np.testing.assert_allclose(pos[0], [[1, 2, 3], [11, 2, 3], [1, 12, 3]], atol=1e-12)
    # frame 1: root rotated 90 deg about X (ZXY order, X second): +Y offset goes to +Z
    np.testing.assert_allclose(pos[1], [[0, 0, 0], [10, 0, 0], [0, 0, 10]], atol=1e-12)


@pytest.mark.parametrize("broken,match", [
    ("HIERARCHY\nMOTION\nFrames: 0\nFrame Time: 0.1\n", "no ROOT"),
    ("HIERARCHX\n", "HIERARCHY"),
    (SMALL_BVH.replace("CHANNELS 1 Xrotation", "CHANNELS 2 Xrotation"), "line 18"),
    (SMALL_BVH.replace("0 0 0 0 90 0 0 0 0 90\n", ""), "expected 2 frames"),
    (SMALL_BVH.replace("1 2 3", "1 two 3"), "not a number"),
    (SMALL_BVH.replace("OFFSET 10 0 0", "OFFSET 10 0"), "three numbers"),
    (SMALL_BVH.split("MOTION")[0], "no MOTION"),
    (SMALL_BVH.replace("Frame Time: 0.04\n", ""), "Frame Time"),
])
def test_malformed_files_raise_clear_errors(broken, match):
    with pytest.raises(BvhFormatError, match=match) as info:
        parse_bvh(broken, source="bad.bvh")
    assert "bad.bvh" in str(info.value)


def test_read_missing_file(tmp_path):
    with pytest.raises(BvhFormatError, match="Check the path"):
        read_bvh(tmp_path / "nope.bvh")


def test_write_into_missing_folder_raises_output_error(tmp_path):
    with pytest.raises(OutputError, match="Choose a folder"):
        export_bvh(smooth_motion(frames=2), tmp_path / "missing" / "x.bvh")


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "take.bvh"
    export_bvh(smooth_motion(frames=3), path)
    before = path.read_bytes()
    bad = Motion(poses=np.full((2, 165), np.nan), trans=np.zeros((2, 3)), fps=30)
    with pytest.raises(ValueError, match="finite"):
        export_bvh(bad, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["take.bvh"]


def test_write_bvh_reproduces_expgest_beat_file(fixtures_dir, tmp_path):
    """The generic writer, fed the official decoder's values, writes a file that parses to the official file."""
    torch = pytest.importorskip("torch")
    data = torch.load(fixtures_dir / "decode.pt", weights_only=True)
    official = read_bvh(fixtures_dir / "decode_1141_nosg.bvh")
    rotations = data["bvh_nosg_rotations_deg"].numpy().astype(np.float64)
    positions = data["bvh_nosg_positions"].numpy()
    offsets = data["bvh_nosg_offsets"].numpy()
    assert len(official.names) == 75 and official.num_frames == 24
    # the official file is in index order (depth-first) with ZYX channels: its rows are the stored arrays
    np.testing.assert_allclose(official.frames[:, :3], positions[:, 0], atol=1e-6)
    np.testing.assert_allclose(official.frames[:, 3:].reshape(24, 75, 3), rotations, atol=1e-6)
    path = write_bvh(official.names, official.parents, offsets, rotations, positions[:, 0], 0.05,
                     tmp_path / "beat.bvh", channel_order="ZYX")
    ours = read_bvh(path)
    assert ours.names == official.names and ours.parents == official.parents
    assert ours.channels == official.channels
    assert ours.frame_time == official.frame_time
    np.testing.assert_allclose(ours.offsets, official.offsets, atol=1e-6)
    np.testing.assert_array_equal(ours.frames, official.frames)
    assert sorted(ours.end_sites) == sorted(official.end_sites)
    a, _ = ours.joint_positions(0.01)
    b, _ = official.joint_positions(0.01)
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_write_bvh_reorders_rows_depth_first(tmp_path):
    # joint 1 and 2 are children of 0, joint 3 a child of 1: depth-first order is 0, 1, 3, 2
    names, parents = ["r", "a", "b", "a2"], [-1, 0, 0, 1]
    offsets = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]], float)
    rotations = np.zeros((1, 4, 3))
    rotations[0, 1] = [90.0, 0, 0]  # joint a: 90 deg about Z swings a2 from +X to +Y
    path = write_bvh(names, parents, offsets, rotations, np.zeros((1, 3)), 0.1, tmp_path / "t.bvh")
    data = read_bvh(path)
    assert data.names == ["r", "a", "a2", "b"]
    pos, _ = data.joint_positions()
    np.testing.assert_allclose(pos[0, data.names.index("a2")], [1, 1, 0], atol=1e-9)
    np.testing.assert_allclose(pos[0, data.names.index("b")], [0, 1, 0], atol=1e-9)
    with pytest.raises(ValueError, match="precede"):
        write_bvh(names, [-1, 3, 0, 0], offsets, rotations, np.zeros((1, 3)), 0.1, tmp_path / "u.bvh")


def test_snap_fps_undoes_printed_frame_time_rounding():
    from tests.backend.bvh_reader import snap_fps

    assert snap_fps(1 / 0.033333) == 30.0
    assert snap_fps(1 / 0.041708) == pytest.approx(24000 / 1001, abs=1e-12)
    assert snap_fps(1 / 0.033367) == pytest.approx(30000 / 1001, abs=1e-12)
    assert snap_fps(1 / 0.05) == 20.0
    assert snap_fps(7.3) == 7.3
