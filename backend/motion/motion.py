"""The ``Motion`` container (DESIGN.md section 2) and its ``.npz`` file format (AMASS / BEAT2 layout).

numpy-only, so the add-on reads results with the same code that writes them.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import numpy as np

from ..fileio import write_atomic
from .skeleton import NUM_JOINTS


@dataclass
class Motion:
    """SMPL-X motion: 55 parent-relative axis-angle rotations and a root translation per frame.

    Attributes:
        poses: (T, 165) float32 axis-angle per joint in SMPL-X order, radians, SMPL-X canonical frame
            (Y up, +Z forward). Hand poses are absolute (``flat_hand_mean=True`` convention).
        trans: (T, 3) float32 root (pelvis) translation, metres.
        fps: the true frame rate of ``poses``.
        betas: (10,) float32 body shape.
        gender: ``neutral`` | ``male`` | ``female``.
    """

    poses: np.ndarray
    trans: np.ndarray
    fps: float
    betas: np.ndarray = field(default_factory=lambda: np.zeros(10, np.float32))
    gender: str = "neutral"

    def __post_init__(self) -> None:
        poses = np.asarray(self.poses, dtype=np.float32)
        if poses.ndim == 3 and poses.shape[1:] == (NUM_JOINTS, 3):
            poses = poses.reshape(len(poses), NUM_JOINTS * 3)
        if poses.ndim != 2 or poses.shape[1] != NUM_JOINTS * 3:
            raise ValueError(f"poses must be (T, 165) or (T, 55, 3), got {poses.shape}")
        trans = np.asarray(self.trans, dtype=np.float32)
        if trans.shape != (len(poses), 3):
            raise ValueError(f"trans must be ({len(poses)}, 3), got {trans.shape}")
        if not (self.fps > 0 and np.isfinite(self.fps)):
            raise ValueError(f"fps must be positive, got {self.fps}")
        self.poses = poses
        self.trans = trans
        self.fps = float(self.fps)
        self.betas = np.asarray(self.betas, dtype=np.float32).reshape(-1)
        self.gender = str(self.gender)

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return int(self.poses.shape[0])

    @property
    def duration_s(self) -> float:
        """T / fps, seconds."""
        return self.num_frames / self.fps

    def joint_axis_angles(self) -> np.ndarray:
        """(T, 55, 3) view of ``poses``."""
        return self.poses.reshape(self.num_frames, NUM_JOINTS, 3)

    def to_npz_bytes(self) -> bytes:
        """The ``.npz`` file content (see ``save_npz``)."""
        buffer = io.BytesIO()
        np.savez(buffer, poses=self.poses, trans=self.trans, betas=self.betas,
                 gender=np.array(self.gender), mocap_framerate=np.array(self.fps, dtype=np.float64))
        return buffer.getvalue()


def save_npz(motion: Motion, path: str | os.PathLike[str]) -> None:
    """Write ``motion`` as an AMASS/BEAT2-layout ``.npz`` (poses, trans, betas, gender, mocap_framerate).

    The file is written to a temporary name in the same folder and renamed into place, so a reader never
    sees a half-written file.
    """
    write_atomic(path, motion.to_npz_bytes(), what="motion file")


def load_npz(path: str | os.PathLike[str], *, hand_mean: np.ndarray | None = None) -> Motion:
    """Read an AMASS / BEAT2 / SMPL-X ``.npz`` motion.

    Accepts ``poses`` of shape (T, 165), (T, 55, 3) or the split SMPL-X keys (``root_orient`` /
    ``global_orient``, ``pose_body``, ``pose_hand``, ``pose_jaw``, ``pose_eye``). Frame rate from
    ``mocap_framerate`` (or ``mocap_frame_rate``/``fps``).

    Args:
        path: the file.
        hand_mean: (90,) relaxed-hand mean to add to the 30 hand joints when the file uses the
            relaxed-hand-mean convention (``flat_hand_mean=False``, as BEAT2 does); None = the file's
            hand poses are already absolute.

    Returns:
        The Motion, hand poses absolute.
    """
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        if "poses" in keys:
            poses = np.asarray(data["poses"], dtype=np.float32)
            frames = poses.shape[0]
            poses = poses.reshape(frames, -1)
            if poses.shape[1] == 156:  # SMPL-H layout (52 joints): no jaw/eyes
                poses = np.concatenate([poses[:, :66], np.zeros((frames, 9), np.float32), poses[:, 66:]], 1)
        else:
            root = data["root_orient"] if "root_orient" in keys else data["global_orient"]
            frames = root.shape[0]
            parts = [root.reshape(frames, 3), data["pose_body"].reshape(frames, 63),
                     data["pose_jaw"].reshape(frames, 3) if "pose_jaw" in keys else np.zeros((frames, 3)),
                     data["pose_eye"].reshape(frames, 6) if "pose_eye" in keys else np.zeros((frames, 6)),
                     data["pose_hand"].reshape(frames, 90)]
            poses = np.concatenate(parts, axis=1).astype(np.float32)
        if poses.shape[1] != NUM_JOINTS * 3:
            raise ValueError(f"{path}: poses have {poses.shape[1]} values per frame, expected 165 (SMPL-X)")
        trans = np.asarray(data["trans"], dtype=np.float32) if "trans" in keys else np.zeros((frames, 3), np.float32)
        fps = 30.0
        for key in ("mocap_framerate", "mocap_frame_rate", "fps", "framerate"):
            if key in keys:
                fps = float(np.asarray(data[key]))
                break
        betas = np.asarray(data["betas"], dtype=np.float32).reshape(-1)[:10] if "betas" in keys else np.zeros(10)
        gender = str(np.asarray(data["gender"])) if "gender" in keys else "neutral"
    if hand_mean is not None:
        poses = poses.copy()
        poses[:, 75:165] += np.asarray(hand_mean, dtype=np.float32).reshape(90)
    return Motion(poses=poses, trans=trans, fps=fps, betas=betas, gender=gender)
