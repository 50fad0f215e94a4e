"""A BVH reader for the tests: parses the files ``backend.motion.bvh`` writes (and generic BVH files) and
converts SMPL-X BVH back to a ``Motion``, so export can be checked by reading it back (round trips, the CLI's
``.bvh`` output, Blender's importer). It is test code: the add-on and the backend only write BVH.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backend.errors import FileFormatError
from backend.motion.bvh import UNITS
from backend.motion.fk import chain_transforms
from backend.motion.motion import Motion
from backend.motion.rotations import matrix_to_axis_angle
from backend.motion.skeleton import JOINT_NAMES, NUM_JOINTS


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


def parse_bvh(text: str, source: str = "<string>") -> BvhData:  # noqa: C901 - one pass over the lines, kept whole
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
