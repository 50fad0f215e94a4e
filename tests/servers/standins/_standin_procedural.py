"""Stand-in for ``backend.engines.procedural`` (tests only): a deterministic sway."""

from __future__ import annotations

import numpy as np

from backend.motion.motion import Motion


class ProceduralEngine:
    name = "procedural"

    def generate(self, audio, request, progress, cancel):
        frames = max(1, round(len(audio) / 16000 * 30))
        progress("analysing prosody", 0.0)
        cancel.check()
        t = np.arange(frames, dtype=np.float32) / 30
        poses = np.zeros((frames, 165), np.float32)
        poses[:, 3 * 16 + 2] = 0.3 * np.sin(2 * np.pi * 0.5 * t + request.seed)
        progress("moving", 0.5)
        cancel.check()
        return Motion(poses=poses, trans=np.zeros((frames, 3), np.float32), fps=30.0)
