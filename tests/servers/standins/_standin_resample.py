"""Stand-in for ``backend.motion.resample`` (tests only): nearest-frame resampling."""

from __future__ import annotations

import numpy as np

from backend.motion.motion import Motion


def num_frames_for(duration_s, fps):
    return max(1, int(round(duration_s * fps)))


def resample_motion(motion, fps, num_frames):
    index = np.minimum((np.arange(num_frames) / fps * motion.fps).round().astype(int), motion.num_frames - 1)
    return Motion(poses=motion.poses[index], trans=motion.trans[index], fps=fps, betas=motion.betas,
                  gender=motion.gender)
