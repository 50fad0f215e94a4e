"""The DDIM sampling loop over several motion streams (ExpGest denoises a body and a hand stream jointly).

The loop is written out here (diffusers' pipeline style); the per-step math lives in the scheduler
(``backend/sampling/scheduling_ddim_cosine.py``) and guidance lives in wrappers around the denoiser
(``guidance.py``), so this function knows nothing about conditions, classifiers or windows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from ...sampling import DDIMCosineScheduler

Streams = tuple[torch.Tensor, ...]


class StreamDenoiser(Protocol):
    """x̂₀ predictor: ``(streams x_t, training timestep t) -> streams x̂₀`` (shapes ``[B, C_s, 1, T]``)."""

    def __call__(self, x_t: Streams, timestep: int) -> Streams: ...


def sample_ddim(denoiser: StreamDenoiser, scheduler: DDIMCosineScheduler, x_T: Streams, *,
                check_cancel: Callable[[], None] | None = None,
                on_step: Callable[[int, int, Streams], None] | None = None) -> Streams:
    """Run the deterministic DDIM chain from x_T to x₀ on every stream.

    Args:
        denoiser: returns x̂₀ for every stream (already guided, e.g. a ``ClassifierFreeGuidance`` wrapper).
        scheduler: a scheduler after ``set_timesteps``; its ``timesteps`` define the chain.
        x_T: initial Gaussian noise per stream, float32, e.g. ``([1, 451, 1, 88], [1, 690, 1, 88])``.
        check_cancel: called before every step; raises to stop (``CancelToken.check``).
        on_step: ``(step_index, num_steps, pred_x0)`` after each denoiser call (progress, fixture capture).

    Returns:
        The final samples x₀, one float32 tensor per stream.
    """
    sample = tuple(x_T)
    num_steps = len(scheduler.timesteps)
    with torch.no_grad():
        for step_index, timestep in enumerate(scheduler.timesteps):
            if check_cancel is not None:
                check_cancel()
            pred_x0 = denoiser(sample, int(timestep))
            if on_step is not None:
                on_step(step_index, num_steps, pred_x0)
            sample = tuple(scheduler.step(x0, int(timestep), x_t) for x0, x_t in zip(pred_x0, sample, strict=True))
    return sample
