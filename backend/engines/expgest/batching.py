"""Several clips per forward: window k of several clips denoised as one batched DDIM chain.

Each clip keeps its own conditions, noise (its own seeded generator), emotion guidance and stitching; only the
network calls are shared. ``run_window_jobs`` turns n window jobs into one chain of batch n (the classifier-free
guidance wrapper then evaluates 2n rows per step: n conditional, n unconditional); with one job it builds exactly
the wrappers a single clip always used, so the single-clip numerics are unchanged.

``WindowBatcher`` lets the clips run their own pipelines (``ExpGestEngine.generate_features``) in threads: each
clip's window sampler ``submit``s its job and waits; when every clip still running has submitted, the last one
to arrive runs the batched chain for all of them. A clip that has no more windows ``leave``s, so clips of
different lengths finish alone. The network has no cross-batch operations, so every clip gets the result it gets
alone up to floating-point rounding of the batched matmuls (``tests/backend/test_expgest_batching.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ...sampling import DDIMCosineScheduler
from .guidance import ClassifierFreeGuidance, EmotionGuidance, overlap_gradients
from .sampler import Streams, sample_ddim


@dataclass
class WindowJob:
    """One clip's window, ready to sample.

    Attributes:
        y: conditions, every tensor with batch 1.
        x_T: initial noise per stream, each (1, C_s, 1, frames), float32.
        guidance: classifier-free guidance scale (equal for all jobs of one batch).
        emotion: (target index, strength, eps_provider) for emotion guidance, or None.
        check_cancel: raises to stop (the whole batch stops).
        on_step: ``(step, num_steps, pred_x0 of this clip)`` after each step.
    """

    y: dict[str, torch.Tensor]
    x_T: Streams
    guidance: float
    emotion: tuple[int, float, Callable[[int, str], torch.Tensor]] | None = None
    check_cancel: Callable[[], None] | None = None
    on_step: Callable[[int, int, Streams], None] | None = None


def run_window_jobs(jobs: list[WindowJob], network: Any, classifier: Any, scheduler: DDIMCosineScheduler
                    ) -> list[Streams]:
    """Sample the windows of ``jobs`` as one batch (rows in job order).

    Args:
        jobs: one or more jobs with the same guidance scale.
        network: the denoiser (``ExpGestNetwork``).
        classifier: the emotion classifier (needed when a job has ``emotion``).
        scheduler: the scheduler after ``set_timesteps``.

    Returns:
        x₀ per job, each a tuple of (1, C_s, 1, frames) float32 tensors.

    Raises:
        ValueError: jobs with different guidance scales.
    """
    if len({job.guidance for job in jobs}) != 1:
        raise ValueError("Jobs batched together need the same guidance scale.")
    device = jobs[0].x_T[0].device
    if len(jobs) == 1:
        y, x_T = jobs[0].y, jobs[0].x_T
    else:
        y = {key: torch.cat([job.y[key] for job in jobs], dim=0) for key in jobs[0].y}
        x_T = tuple(torch.cat([job.x_T[s] for job in jobs], dim=0) for s in range(len(jobs[0].x_T)))
    denoiser: Any = ClassifierFreeGuidance(network, y, jobs[0].guidance)
    guided = [i for i, job in enumerate(jobs) if job.emotion is not None]
    if guided:
        emotions = [jobs[i].emotion for i in guided]
        targets = torch.tensor([e[0] for e in emotions if e is not None], device=device)
        strengths = [e[1] for e in emotions if e is not None]
        providers = [e[2] for e in emotions if e is not None]
        strength: float | torch.Tensor = (strengths[0] if len(set(strengths)) == 1 else
                                          torch.tensor(strengths, dtype=torch.float32, device=device))
        rows = None if len(guided) == len(jobs) else torch.tensor(guided, device=device)

        def eps_provider(timestep: int, part: str) -> torch.Tensor:
            # each clip draws from its own generator, in the order it would alone
            return torch.cat([provide(timestep, part) for provide in providers], dim=0)

        denoiser = EmotionGuidance(denoiser, classifier, scheduler, targets, strength, eps_provider, rows=rows,
                                   overlap=overlap_gradients(device))

    def check_cancel() -> None:
        for job in jobs:
            if job.check_cancel is not None:
                job.check_cancel()

    def on_step(step: int, num_steps: int, pred_x0: Streams) -> None:
        for i, job in enumerate(jobs):
            if job.on_step is not None:
                job.on_step(step, num_steps, tuple(x[i:i + 1] for x in pred_x0))

    out = sample_ddim(denoiser, scheduler, x_T, check_cancel=check_cancel, on_step=on_step)
    if len(jobs) == 1:
        return [out]
    return [tuple(x[i:i + 1] for x in out) for i in range(len(jobs))]


class WindowBatcher:
    """Meeting point of concurrently sampled clips: one batched chain per round of submitted windows.

    Args:
        participants: number of clips (threads) that will submit windows.
        run: ``(jobs) -> results`` (``run_window_jobs`` with the network bound).
    """

    def __init__(self, participants: int, run: Callable[[list[WindowJob]], list[Streams]]) -> None:
        self._cond = threading.Condition()
        self._active = participants
        self._pending: list[tuple[WindowJob, dict[str, Any]]] = []
        self._run = run
        self.batch_sizes: list[int] = []

    def submit(self, job: WindowJob) -> Streams:
        """Sample ``job`` together with the other clips' current windows; blocks until its result is ready."""
        slot: dict[str, Any] = {}
        with self._cond:
            self._pending.append((job, slot))
            self._flush_if_complete()
            while "result" not in slot and "error" not in slot:
                self._cond.wait()
        if "error" in slot:
            raise slot["error"]
        return slot["result"]

    def leave(self) -> None:
        """This clip submits no more windows (finished or failed)."""
        with self._cond:
            self._active -= 1
            self._flush_if_complete()

    def _flush_if_complete(self) -> None:
        # Called with the lock held; everyone else still running is waiting inside submit.
        if not self._pending or len(self._pending) < self._active:
            return
        batch, self._pending = self._pending, []
        self.batch_sizes.append(len(batch))
        try:
            results = self._run([job for job, _ in batch])
            for (_, slot), result in zip(batch, results, strict=True):
                slot["result"] = result
        except BaseException as error:  # noqa: BLE001 - handed to every clip of the batch, re-raised there
            for _, slot in batch:
                slot["error"] = error
        self._cond.notify_all()
