"""Frame counts and frame-rate conversion of SMPL-X motion (rotations by slerp, translation linearly).

numpy-only, for Blender's Python too.
"""

from __future__ import annotations

import numpy as np

from ..vocabulary import frame_count
from .motion import Motion
from .rotations import axis_angle_to_quat, quat_continuity, quat_to_axis_angle, slerp
from .skeleton import NUM_JOINTS

# The one frame-count rule lives in the vocabulary; this name is kept for the motion code that imports it here.
num_frames_for = frame_count


def resample_motion(motion: Motion, fps: float, num_frames: int | None = None) -> Motion:
    """Resample a motion to ``fps``, with exactly ``num_frames`` frames.

    Output frame k samples the source at time ``k / fps``, clamped to the source's range
    ``[0, (T - 1) / motion.fps]`` (so a longer output holds the last pose). Joint rotations are interpolated by
    quaternion slerp between the two neighbouring source frames, after making each joint's quaternions
    sign-continuous over time (so no interpolation takes the long way round); translation linearly. Resampling
    to the same rate and length returns the same poses (up to the axis-angle round trip).

    Args:
        motion: the source motion (T >= 1 frames).
        fps: target frame rate, > 0.
        num_frames: target frame count (>= 1); None = ``num_frames_for(motion.duration_s, fps)``.

    Returns:
        A new Motion at ``fps`` with the same betas and gender.
    """
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0, got {fps}")
    if num_frames is None:
        num_frames = num_frames_for(motion.duration_s, fps)
    num_frames = int(num_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    src_frames = motion.num_frames
    if src_frames < 1:
        raise ValueError("cannot resample a motion with no frames")
    # Source position of each output frame, in source frames. k * src_fps / fps is exact for equal rates.
    u = np.arange(num_frames, dtype=np.float64) * motion.fps / float(fps)
    u = np.clip(u, 0.0, src_frames - 1)
    i0 = np.minimum(np.floor(u).astype(np.int64), src_frames - 1)
    i1 = np.minimum(i0 + 1, src_frames - 1)
    alpha = u - i0

    quats = quat_continuity(axis_angle_to_quat(motion.joint_axis_angles().astype(np.float64)), axis=0)
    q = slerp(quats[i0], quats[i1], alpha[:, None])
    poses = quat_to_axis_angle(q).reshape(num_frames, NUM_JOINTS * 3)
    trans_src = motion.trans.astype(np.float64)
    trans = trans_src[i0] * (1.0 - alpha[:, None]) + trans_src[i1] * alpha[:, None]
    return Motion(poses=poses.astype(np.float32), trans=trans.astype(np.float32), fps=float(fps),
                  betas=motion.betas.copy(), gender=motion.gender)
