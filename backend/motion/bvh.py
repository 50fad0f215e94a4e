"""BVH motion files: a generic reader and writer, and SMPL-X ``Motion`` export/import.

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FileFormatError
from ..fileio import write_atomic
from .fk import chain_transforms
from .motion import Motion
from .rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_euler
from .skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, REST_JOINTS, rest_offsets

UNITS = {"m": 1.0, "cm": 100.0}  # BVH units per metre

# End Site offsets (metres, rest frame) of the SMPL-X leaf joints: where the bone tails are drawn.
_FOOT_TIP = (0.0, -0.02, 0.06)
_EYE_TIP = (0.0, 0.0, 0.02)
_JAW_TIP = (0.0, -0.04, 0.08)


class BvhFormatError(FileFormatError, ValueError):
    """A BVH file could not be parsed; the message names the file and the line."""


@dataclass
class BvhData:
    """A parsed BVH file.

    Attributes:
        names: J joint names in file (depth-first) order.
        parents: J parent indices into ``names``, -1 for a ROOT.
        offsets: (J, 3) float64 OFFSETs in file units.
        channels: J tuples of channel names as written (e.g. ``("Xposition", ..., "Zrotation")``).
        frames: (F, C) float64 MOTION values, C = total channel count.
        frame_time: seconds per frame.
        end_sites: joint index -> (3,) End Site OFFSET.
    """

    names: list[str]
    parents: list[int]
    offsets: np.ndarray
    channels: list[tuple[str, ...]]
    frames: np.ndarray
    frame_time: float
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        """Number of frames F."""
        return int(self.frames.shape[0])

    @property
    def fps(self) -> float:
        """1 / frame_time."""
        return 1.0 / self.frame_time if self.frame_time > 0 else 0.0

    def channel_slices(self) -> list[slice]:
        """Per joint, the slice of its channels in a MOTION row."""
        out, start = [], 0
        for chans in self.channels:
            out.append(slice(start, start + len(chans)))
            start += len(chans)
        return out

    def local_rotations(self) -> np.ndarray:
        """(F, J, 3, 3) parent-relative rotations from the rotation channels (identity where none)."""
        frames = self.num_frames
        rot = np.broadcast_to(np.eye(3), (frames, len(self.names), 3, 3)).copy()
        for j, (chans, sl) in enumerate(zip(self.channels, self.channel_slices(), strict=True)):
            values = self.frames[:, sl]
            for c, name in enumerate(chans):
                axis = name[0].upper()
                if not name.lower().endswith("rotation"):
                    continue
                angle = np.deg2rad(values[:, c])
                rot[:, j] = rot[:, j] @ _axis_rotation(axis, angle)
        return rot

    def local_translations(self) -> np.ndarray:
        """(F, J, 3) translations from parent (OFFSET, replaced per axis by position channels when present)."""
        trans = np.broadcast_to(self.offsets, (self.num_frames, len(self.names), 3)).copy()
        for j, (chans, sl) in enumerate(zip(self.channels, self.channel_slices(), strict=True)):
            values = self.frames[:, sl]
            for c, name in enumerate(chans):
                if name.lower().endswith("position"):
                    trans[:, j, "XYZ".index(name[0].upper())] = values[:, c]
        return trans

    def joint_positions(self, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """World positions and rotations by forward kinematics.

        Args:
            scale: multiply positions by this (e.g. 0.01 for a centimetre file -> metres).

        Returns:
            (positions (F, J, 3), global rotations (F, J, 3, 3)), float64.
        """
        local_t = self.local_translations() * scale
        # Every ROOT (parent -1) is placed at its translation: its position channels, else its OFFSET.
        return chain_transforms(self.local_rotations(), local_t[:, 0], local_t, self.parents)


def _axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    rows = {"X": ((one, zero, zero), (zero, c, -s), (zero, s, c)),
            "Y": ((c, zero, s), (zero, one, zero), (-s, zero, c)),
            "Z": ((c, -s, zero), (s, c, zero), (zero, zero, one))}[axis]
    return np.stack([np.stack(r, -1) for r in rows], -2)


# --------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------

_CHANNEL_NAMES = {f"{a}{k}" for a in "xyz" for k in ("position", "rotation")}


def read_bvh(path: str | os.PathLike[str]) -> BvhData:
    """Parse a BVH file (any skeleton, any channel layout).

    Args:
        path: the ``.bvh`` file.

    Returns:
        The parsed ``BvhData``.

    Raises:
        BvhFormatError: the file is not a readable BVH (message names the line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise BvhFormatError(f"Cannot read the BVH file {path}: {exc.strerror}. Check the path.") from exc
    return parse_bvh(text, source=str(path))


def parse_bvh(text: str, source: str = "<string>") -> BvhData:
    """Parse BVH text (see ``read_bvh``)."""
    lines = text.splitlines()

    def fail(lineno: int, what: str) -> BvhFormatError:
        return BvhFormatError(f"{source}, line {lineno + 1}: {what}. The file is not a valid BVH file; "
                              "re-export it from the source application.")

    names: list[str] = []
    parents: list[int] = []
    offsets: list[tuple[float, float, float]] = []
    channels: list[tuple[str, ...]] = []
    end_sites: dict[int, np.ndarray] = {}
    stack: list[int] = []  # open blocks: joint index, or -2 for an End Site
    pending: int | None = None  # joint/end site declared, waiting for "{"
    current: int | None = None  # the block whose OFFSET/CHANNELS come next
    i = 0
    while i < len(lines) and not lines[i].split():
        i += 1
    if i == len(lines) or lines[i].split()[0].upper() != "HIERARCHY":
        raise fail(i if i < len(lines) else 0, "expected 'HIERARCHY' at the start")
    i += 1
    while i < len(lines):
        tokens = lines[i].split()
        if not tokens:
            i += 1
            continue
        head = tokens[0].upper()
        if head in ("ROOT", "JOINT"):
            if len(tokens) < 2:
                raise fail(i, f"{head} without a name")
            if head == "JOINT" and not stack:
                raise fail(i, "JOINT outside any ROOT")
            if stack and stack[-1] == -2:
                raise fail(i, "JOINT inside an End Site")
            names.append("_".join(tokens[1:]))
            parents.append(stack[-1] if stack else -1)
            offsets.append((0.0, 0.0, 0.0))
            channels.append(())
            pending = current = len(names) - 1
        elif head == "END":
            if not stack or stack[-1] == -2:
                raise fail(i, "End Site outside a joint")
            pending = -2
            current = -(stack[-1] + 10)  # encodes "End Site of joint stack[-1]"
        elif head == "{":
            if pending is None:
                raise fail(i, "unexpected '{'")
            stack.append(pending)
            pending = None
        elif head == "}":
            if not stack:
                raise fail(i, "unbalanced '}'")
            stack.pop()
            current = None
        elif head == "OFFSET":
            try:
                vec = tuple(float(v) for v in tokens[1:4])
            except ValueError:
                raise fail(i, "OFFSET values are not numbers") from None
            if len(vec) != 3 or current is None:
                raise fail(i, "OFFSET needs three numbers inside a joint")
            if current >= 0:
                offsets[current] = vec
            else:
                end_sites[-current - 10] = np.array(vec)
        elif head == "CHANNELS":
            if current is None or current < 0:
                raise fail(i, "CHANNELS outside a joint")
            try:
                count = int(tokens[1])
            except (IndexError, ValueError):
                raise fail(i, "CHANNELS needs a count") from None
            chans = tuple(tokens[2:])
            if len(chans) != count or any(c.lower() not in _CHANNEL_NAMES for c in chans):
                raise fail(i, f"CHANNELS lists {chans}, expected {count} of X/Y/Z position/rotation")
            channels[current] = chans
        elif head == "MOTION":
            break
        else:
            raise fail(i, f"unexpected {tokens[0]!r}")
        i += 1
    if not names:
        raise fail(min(i, max(len(lines) - 1, 0)), "no ROOT joint")
    if stack:
        raise fail(min(i, len(lines) - 1), "a '{' block is not closed")
    if i >= len(lines):
        raise fail(len(lines) - 1, "no MOTION section")
    i += 1
    num_frames = frame_time = None
    while i < len(lines) and (num_frames is None or frame_time is None):
        tokens = lines[i].split()
        if tokens:
            key = " ".join(tokens[:-1]).lower()
            if key not in ("frames:", "frame time:"):
                raise fail(i, "expected 'Frames: <count>' and 'Frame Time: <seconds>' after MOTION")
            try:
                if key == "frames:":
                    num_frames = int(tokens[-1])
                else:
                    frame_time = float(tokens[-1])
            except ValueError:
                raise fail(i, f"bad number {tokens[-1]!r}") from None
        i += 1
    if num_frames is None or frame_time is None:
        raise fail(len(lines) - 1, "missing 'Frames:' or 'Frame Time:'")
    num_channels = sum(len(c) for c in channels)
    body = "\n".join(lines[i:])
    try:
        values = np.array(body.split(), dtype=np.float64)
    except ValueError:
        raise fail(i, "MOTION data contains something that is not a number") from None
    if num_channels == 0:
        frames = np.zeros((num_frames, 0))
    else:
        if values.size < num_frames * num_channels:
            raise fail(len(lines) - 1, f"MOTION has {values.size} values, expected {num_frames} frames x "
                                       f"{num_channels} channels")
        frames = values[: num_frames * num_channels].reshape(num_frames, num_channels)
    return BvhData(names=names, parents=parents, offsets=np.array(offsets, dtype=np.float64).reshape(-1, 3),
                   channels=channels, frames=frames, frame_time=float(frame_time), end_sites=end_sites)


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
# SMPL-X Motion <-> BVH
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
    sites = {j: v * scale for j, v in smplx_end_sites(rest).items()}
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


def bvh_to_motion(data: BvhData, *, units: str | None = None) -> Motion:
    """Convert a BVH on the SMPL-X skeleton (joint names as in ``skeleton.JOINT_NAMES``) to a ``Motion``.

    Local rotations are taken as SMPL-X axis-angle unchanged (valid for files whose rest pose has identity joint
    orientations, as ``export_bvh`` writes); ``trans`` = root position - root OFFSET.

    Args:
        data: a parsed BVH.
        units: ``"cm"`` or ``"m"``; None guesses from the skeleton size (taller than 10 units = centimetres).

    Returns:
        The Motion at ``1 / frame_time`` fps.

    Raises:
        BvhFormatError: a SMPL-X joint is missing.
    """
    index = {name: j for j, name in enumerate(data.names)}
    missing = [name for name in JOINT_NAMES if name not in index]
    if missing:
        raise BvhFormatError(f"The BVH skeleton is not SMPL-X: {len(missing)} joints are missing "
                             f"({', '.join(missing[:5])}...). Only BVH files with SMPL-X joint names can be "
                             "converted to SMPL-X poses.")
    if data.frame_time <= 0:
        raise BvhFormatError("The BVH file has a zero or negative Frame Time; set it to 1/fps.")
    if units is None:
        rest, _ = chain_transforms(np.eye(3)[None, None].repeat(len(data.names), 1), data.offsets[0][None],
                                   data.offsets, data.parents)
        units = "cm" if np.ptp(rest[0, :, 1]) > 10.0 else "m"
    scale = 1.0 / UNITS[units]
    cols = [index[name] for name in JOINT_NAMES]
    local = data.local_rotations()[:, cols]
    poses = matrix_to_axis_angle(local).reshape(data.num_frames, NUM_JOINTS * 3)
    root = cols[0]
    trans = (data.local_translations()[:, root] - data.offsets[root]) * scale
    return Motion(poses=poses.astype(np.float32), trans=trans.astype(np.float32), fps=snap_fps(data.fps))


def snap_fps(fps: float, rel_tol: float = 2e-5) -> float:
    """Undo the rounding of a printed frame time: a rate within ``rel_tol`` of an integer rate or of an NTSC
    rate (``n * 1000 / 1001``, e.g. 23.976, 29.97) becomes that rate (``0.033333`` s per frame -> 30 fps).

    Args:
        fps: 1 / frame time as read.
        rel_tol: relative tolerance.

    Returns:
        The snapped rate, or ``fps`` unchanged.
    """
    for candidate in (float(round(fps)), round(fps * 1.001) * 1000.0 / 1001.0):
        if candidate > 0 and abs(fps - candidate) <= rel_tol * candidate:
            return candidate
    return float(fps)
