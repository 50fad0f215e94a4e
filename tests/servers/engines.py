"""Engines for testing the server's robustness, loaded as an engine plugin (``backend.engines.plugins``).

The test harness names this file in ``EXPGEST_ENGINE_PLUGINS`` (``tests/servers/harness.py``); it is not part
of the shipped package, so users never see these engines.

- ``_test_sleep``: ``request.steps`` units of ``EXPGEST_TEST_STEP_S`` seconds (default 0.1), reporting
  "denoising window i/N" and checking cancel after each; returns a still rest pose.
- ``_test_quiet``: the same work as one silent block (no progress; cancel still checked every 50 ms), to test
  the server's progress heartbeat; it also prints to stdout, which must not reach the protocol stream.
- ``_test_raise``: raises ``RuntimeError`` (an unexpected engine bug).
- ``_test_crash``: writes a line to stderr and kills the whole process with exit status 3.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from backend.engines.base import SAMPLE_RATE, CancelToken, ProgressFn
from backend.motion.motion import Motion
from backend.request import GenerationRequest

_FPS = 30.0


def _still_motion(audio: np.ndarray) -> Motion:
    frames = max(1, round(len(audio) / SAMPLE_RATE * _FPS))
    return Motion(poses=np.zeros((frames, 165), np.float32), trans=np.zeros((frames, 3), np.float32), fps=_FPS)


def _step_seconds() -> float:
    return float(os.environ.get("EXPGEST_TEST_STEP_S", "0.1"))


class SleepEngine:
    """Sleeps ``request.steps`` × ``EXPGEST_TEST_STEP_S`` seconds, reporting each unit."""

    name = "_test_sleep"
    warnings: tuple[str, ...] = ()

    def generate(self, audio: np.ndarray, request: GenerationRequest, progress: ProgressFn,
                 cancel: CancelToken) -> Motion:
        """See ``backend.engines.base.Engine.generate``."""
        step = _step_seconds()
        for index in range(request.steps):
            progress(f"denoising window {index + 1}/{request.steps}", index / request.steps)
            time.sleep(step)
            cancel.check()
        return _still_motion(audio)


class QuietEngine:
    """Works ``request.steps`` × ``EXPGEST_TEST_STEP_S`` seconds without reporting progress."""

    name = "_test_quiet"
    warnings: tuple[str, ...] = ()

    def generate(self, audio: np.ndarray, request: GenerationRequest, progress: ProgressFn,
                 cancel: CancelToken) -> Motion:
        """See ``backend.engines.base.Engine.generate``."""
        print("_test_quiet: this line must not reach the protocol stream")  # stdout is stderr in the server
        deadline = time.monotonic() + request.steps * _step_seconds()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            cancel.check()
        return _still_motion(audio)


class RaiseEngine:
    """Always fails with an unexpected exception."""

    name = "_test_raise"
    warnings: tuple[str, ...] = ()

    def generate(self, audio: np.ndarray, request: GenerationRequest, progress: ProgressFn,
                 cancel: CancelToken) -> Motion:
        """See ``backend.engines.base.Engine.generate``."""
        progress("denoising window 1/1", 0.0)
        raise RuntimeError("the _test_raise engine always fails")


class CrashEngine:
    """Kills the process, as a segfault in a native library would."""

    name = "_test_crash"
    warnings: tuple[str, ...] = ()

    def generate(self, audio: np.ndarray, request: GenerationRequest, progress: ProgressFn,
                 cancel: CancelToken) -> Motion:
        """See ``backend.engines.base.Engine.generate``."""
        print("_test_crash: killing the backend on purpose", file=sys.stderr, flush=True)
        os._exit(3)


ENGINES = {engine.name: engine for engine in (SleepEngine, QuietEngine, RaiseEngine, CrashEngine)}
