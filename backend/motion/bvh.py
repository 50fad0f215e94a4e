"""BVH motion files: a generic writer and SMPL-X ``Motion`` export (the backend only writes BVH; the tests
read files back with ``tests/backend/bvh_reader.py``).

Conventions of the files this module writes:

* Skeleton: one ROOT (joint 0); joints are written depth-first with children in index order, and the values of
  each MOTION row follow that same depth-first order (for SMPL-X: pelvis, left_hip, left_knee, ...).
* OFFSET of a joint = its rest offset from its parent; the ROOT's OFFSET = the root's rest world position.
* Channels: the root has ``Xposition Yposition Zposition`` then three rotations; every other joint has three
  rotations. The root's position channels are its *world* position (not added to its OFFSET), which is how
  Blender's importer and most tools read them.
* Rotations: Euler angles in degrees, intrinsic, in the channel order: with ``ZYX`` the channels are
  ``Zrotation Yrotation Xrotation`` and ``R_local = Rz @ Ry @ Rx`` (see ``rotations.euler_to_matrix``).
  Forward kinematics is the SMPL-X/BVH rule of ``fk.py``.
* Leaf joints end with an ``End Site`` block (its OFFSET only sets the drawn bone tail).
* ``Frame Time`` = 1 / fps.

SMPL-X export (``export_bvh``): the 55 SMPL-X joints with their names from ``skeleton.py``, in **centimetres**
by default (the usual BVH unit, as BEAT and most mocap tools use; pass ``units="m"`` for metres), Y up,
+Z forward, channel order ``ZYX``. SMPL-X local rotations are written unchanged (the SMPL-X rest pose has
identity joint orientations, so BVH and SMPL-X local frames coincide). In Blender, import a centimetre file with
``bpy.ops.import_anim.bvh(filepath=..., global_scale=0.01)`` and the default axes (forward -Z, up Y): a point
(x, y, z) of the file lands at Blender (x, -z, y) * 0.01 m, with the character facing -Y.

Files are written to a temporary name in the target folder and renamed into place. numpy-only.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..fileio import write_atomic
from .motion import Motion
from .rotations import axis_angle_to_matrix, matrix_to_euler
from .skeleton import JOINT_NAMES, PARENTS, REST_JOINTS, rest_offsets

UNITS = {"m": 1.0, "cm": 100.0}  # BVH units per metre

# End Site offsets (metres, rest frame) of the SMPL-X leaf joints: where the bone tails are drawn.
_FOOT_TIP = (0.0, -0.02, 0.06)
_EYE_TIP = (0.0, 0.0, 0.02)
_JAW_TIP = (0.0, -0.04, 0.08)


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------


def _depth_first(parents: Sequence[int]) -> list[int]:
    kids: dict[int, list[int]] = {j: [] for j in range(-1, len(parents))}
    for j, parent in enumerate(parents):
        kids[parent].append(j)
    order: list[int] = []
    todo = list(reversed(kids[-1]))
    while todo:
        j = todo.pop()
        order.append(j)
        todo.extend(reversed(kids[j]))
    return order


def bvh_text(names: Sequence[str], parents: Sequence[int], offsets: np.ndarray, rotations_deg: np.ndarray,
             root_positions: np.ndarray, frame_time: float, channel_order: str = "ZYX",
             end_sites: Mapping[int, Sequence[float]] | None = None, precision: int = 6) -> str:
    """The text of a BVH file (see ``write_bvh`` for the arguments)."""
    names = list(names)
    num = len(names)
    parents = [int(p) for p in parents]
    offsets = np.asarray(offsets, dtype=np.float64)
    rot = np.asarray(rotations_deg, dtype=np.float64)
    root = np.asarray(root_positions, dtype=np.float64)
    order = channel_order.upper()
    if len(parents) != num or offsets.shape != (num, 3):
        raise ValueError(f"{num} names need {num} parents and ({num}, 3) offsets, got {len(parents)} and "
                         f"{offsets.shape}")
    if parents[0] != -1 or any(p < 0 for p in parents[1:]) or any(p >= j for j, p in enumerate(parents) if j):
        raise ValueError("joint 0 must be the only root and every parent must precede its child")
    if rot.ndim != 3 or rot.shape[1:] != (num, 3):
        raise ValueError(f"rotations_deg must be (T, {num}, 3), got {rot.shape}")
    if root.shape != (rot.shape[0], 3):
        raise ValueError(f"root_positions must be ({rot.shape[0]}, 3), got {root.shape}")
    if len(order) != 3 or set(order) != set("XYZ"):
        raise ValueError(f"channel_order must be a permutation of 'XYZ', got {channel_order!r}")
    if not np.all(np.isfinite(rot)) or not np.all(np.isfinite(root)):
        raise ValueError("rotations and root positions must be finite")
    if any(not n or any(ch.isspace() for ch in n) for n in names):
        raise ValueError("joint names must be non-empty and contain no whitespace")
    end_sites = dict(end_sites or {})
    rot_channels = " ".join(f"{a}rotation" for a in order)
    has_child = {p for p in parents if p >= 0}
    fmt = f"%.{precision}f"
    out = io.StringIO()
    out.write("HIERARCHY\n")

    def vec(v: Sequence[float]) -> str:
        return " ".join(fmt % float(x) for x in v)

    def emit(j: int, depth: int) -> None:
        tab = "\t" * depth
        if j == 0:
            out.write(f"ROOT {names[j]}\n{{\n")
            out.write(f"\tOFFSET {vec(offsets[j])}\n\tCHANNELS 6 Xposition Yposition Zposition {rot_channels}\n")
        else:
            out.write(f"{tab}JOINT {names[j]}\n{tab}{{\n")
            out.write(f"{tab}\tOFFSET {vec(offsets[j])}\n{tab}\tCHANNELS 3 {rot_channels}\n")
        for child in (k for k in range(num) if parents[k] == j):
            emit(child, depth + 1)
        if j not in has_child:
            out.write(f"{tab}\tEnd Site\n{tab}\t{{\n{tab}\t\tOFFSET {vec(end_sites.get(j, (0.0, 0.0, 0.0)))}\n"
                      f"{tab}\t}}\n")
        out.write(f"{tab}}}\n")

    emit(0, 0)
    order_idx = _depth_first(parents)
    frames = rot.shape[0]
    out.write(f"MOTION\nFrames: {frames}\nFrame Time: {float(frame_time)!r}\n")  # full precision: 1/30 exact
    table = np.concatenate([root, rot[:, order_idx].reshape(frames, -1)], axis=1)
    if frames:
        np.savetxt(out, table, fmt=fmt, delimiter=" ")
    return out.getvalue()


def write_bvh(names: Sequence[str], parents: Sequence[int], offsets: np.ndarray, rotations_deg: np.ndarray,
              root_positions: np.ndarray, frame_time: float, path: str | os.PathLike[str],
              channel_order: str = "ZYX", end_sites: Mapping[int, Sequence[float]] | None = None,
              precision: int = 6) -> Path:
    """Write a BVH file for any single-root skeleton (SMPL-X, the BEAT 75-joint skeleton, ...).

    Args:
        names: J joint names (no whitespace).
        parents: J parent indices; ``parents[0] == -1`` and ``parents[j] < j``.
        offsets: (J, 3) rest offsets from each parent, in file units; row 0 = the root's OFFSET line.
        rotations_deg: (T, J, 3) local Euler angles in degrees, listed in ``channel_order``.
        root_positions: (T, 3) world positions of the root, in file units (its position channels).
        frame_time: seconds per frame (1 / fps).
        path: output file; written atomically (temporary file + rename).
        channel_order: rotation channel order, e.g. ``"ZYX"`` (intrinsic, ``R = Rz @ Ry @ Rx``).
        end_sites: joint index -> End Site OFFSET for leaf joints (default zeros).
        precision: decimals written per value.

    Returns:
        The path written.
    """
    path = Path(path)
    text = bvh_text(names, parents, offsets, rotations_deg, root_positions, frame_time, channel_order, end_sites,
                    precision)
    write_atomic(path, text.encode("utf-8"), what="BVH file")
    return path


# --------------------------------------------------------------------------------------------------------------
# SMPL-X Motion -> BVH
# --------------------------------------------------------------------------------------------------------------

def smplx_end_sites(rest_joints: np.ndarray = REST_JOINTS) -> dict[int, np.ndarray]:
    """End Site offsets (metres) of the SMPL-X leaf joints: fingertips continue the last phalanx, feet and jaw
    point forward, eyes forward."""
    rest = np.asarray(rest_joints, dtype=np.float64)
    offsets = rest_offsets(rest)
    has_child = {p for p in PARENTS if p >= 0}
    sites: dict[int, np.ndarray] = {}
    for j, name in enumerate(JOINT_NAMES):
        if j in has_child:
            continue
        if name.endswith("foot"):
            sites[j] = np.array(_FOOT_TIP)
        elif name == "jaw":
            sites[j] = np.array(_JAW_TIP)
        elif "eye" in name:
            sites[j] = np.array(_EYE_TIP)
        else:
            sites[j] = offsets[j].copy()
    return sites


def motion_to_bvh_text(motion: Motion, *, units: str = "cm", channel_order: str = "ZYX",
                       rest_joints: np.ndarray = REST_JOINTS, precision: int = 6) -> str:
    """The BVH text of a SMPL-X motion (see ``export_bvh``)."""
    if units not in UNITS:
        raise ValueError(f"units must be one of {sorted(UNITS)}, got {units!r}")
    scale = UNITS[units]
    rest = np.asarray(rest_joints, dtype=np.float64)
    offsets = rest_offsets(rest) * scale
    rot = axis_angle_to_matrix(motion.joint_axis_angles().astype(np.float64))
    euler = matrix_to_euler(rot, channel_order, degrees=True)
    if len(euler) > 1:  # unwrap +-180 jumps per channel so curves stay continuous
        euler = np.rad2deg(np.unwrap(np.deg2rad(euler), axis=0))
    root = (rest[0] + motion.trans.astype(np.float64)) * scale
    sites: dict[int, Sequence[float]] = {j: (v * scale).tolist() for j, v in smplx_end_sites(rest).items()}
    return bvh_text(JOINT_NAMES, PARENTS, offsets, euler, root, 1.0 / motion.fps, channel_order, sites, precision)


def export_bvh(motion: Motion, path: str | os.PathLike[str], *, units: str = "cm", channel_order: str = "ZYX",
               rest_joints: np.ndarray = REST_JOINTS, precision: int = 6) -> Path:
    """Write a SMPL-X ``Motion`` as BVH on the 55-joint SMPL-X skeleton (conventions in the module docstring).

    Args:
        motion: the motion (its fps gives the frame time).
        path: output ``.bvh``; written atomically.
        units: ``"cm"`` (default) or ``"m"`` for OFFSETs and root positions.
        channel_order: Euler channel order of every joint, default ``"ZYX"``.
        rest_joints: (55, 3) rest joint centres in metres (default: the built-in neutral body).
        precision: decimals per value (6 in centimetres = 1e-8 m).

    Returns:
        The path written.
    """
    path = Path(path)
    text = motion_to_bvh_text(motion, units=units, channel_order=channel_order, rest_joints=rest_joints,
                              precision=precision)
    write_atomic(path, text.encode("utf-8"), what="BVH file")
    return path
