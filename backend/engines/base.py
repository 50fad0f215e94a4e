"""The engine interface: decoded 16 kHz audio plus a request in, a ``Motion`` out.

Engines report progress through a ``ProgressFn`` and poll a ``CancelToken`` between units of work
(denoising steps, windows) so that a cancel takes effect within a second.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

from ..errors import CancelledError
from ..motion.motion import Motion
from ..request import GenerationRequest
from ..vocabulary import SAMPLE_RATE

__all__ = ["SAMPLE_RATE"]  # re-exported for the engines


class ProgressFn(Protocol):
    """Progress callback: ``stage`` is a short phrase a user understands ("denoising window 3/14"),
    ``done`` the fraction of the whole request in [0, 1] (None if unknown), ``message`` optional detail."""

    def __call__(self, stage: str, done: float | None = None, message: str = "") -> None: ...


def no_progress(stage: str, done: float | None = None, message: str = "") -> None:
    """A ProgressFn that ignores everything."""


class CancelToken:
    """Set from another thread to stop a generation; engines call ``check()`` between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the running generation to stop."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once ``cancel()`` was called."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise ``CancelledError`` if cancelled."""
        if self._event.is_set():
            raise CancelledError()


class Engine(Protocol):
    """A gesture generator."""

    name: str
    warnings: list[str]  # full sentences about the last ``generate`` call (ignored text, clipped input …)

    def generate(self, audio: np.ndarray, request: GenerationRequest, progress: ProgressFn,
                 cancel: CancelToken) -> Motion:
        """Generate motion for ``audio``.

        Args:
            audio: (N,) float32 mono waveform at 16 kHz: exactly the requested range.
            request: the validated request (emotion, text annotations, seed, fps …).
            progress: progress callback.
            cancel: polled between units of work.

        Returns:
            A Motion at any frame rate the engine likes (its ``fps`` must be true); the pipeline
            resamples it to ``request.fps`` with exactly ``round(duration * fps)`` frames.
        """
        ...
