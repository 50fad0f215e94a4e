"""Guidance as wrappers around a denoiser (each wrapper is itself a ``StreamDenoiser``).

* ``ClassifierFreeGuidance`` turns an ExpGest network (``forward(x_body, x_hand, timesteps, y, uncond)``) into a
  two-stream x̂₀ predictor: x̂₀ = x̂₀(∅) + s · (x̂₀(c) − x̂₀(∅)) (Ho & Salimans 2022, applied to x̂₀ as ExpGest does),
  the conditional and unconditional branches evaluated as one batch of 2.
* ``EmotionGuidance`` adds the noise-aware emotion classifier's gradient to any x̂₀ predictor through the
  scheduler's score correction (``DDIMCosineScheduler.guide_x0``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import torch

from ...sampling import DDIMCosineScheduler
from .sampler import StreamDenoiser, Streams

# The emotion classifier's gradient scale in ExpGest (hard-wired there); the user's strength multiplies it.
EMOTION_GUIDANCE_SCALE = 3.0
# Stream names as the emotion classifier calls them, in the order the reference evaluates them.
STREAM_PARTS = ("body", "hand")


class ExpGestNetwork(Protocol):
    """The ExpGest denoisers of ``models/expgest`` (audio_only and both hybrids)."""

    def __call__(self, x_body: torch.Tensor, x_hand: torch.Tensor, timesteps: torch.Tensor,
                 y: dict[str, torch.Tensor], uncond: bool | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class EmotionClassifierLike(Protocol):
    """``models.expgest`` ``EmotionClassifier``: 3·∇ log p(target | x_t) per stream."""

    def guidance_gradient(self, x: torch.Tensor, part: str, target: torch.Tensor, scale: float | torch.Tensor = 3.0,
                          eps: torch.Tensor | None = None) -> torch.Tensor: ...


def _repeat_batch(y: dict[str, torch.Tensor], copies: int) -> dict[str, torch.Tensor]:
    return {key: torch.cat([value] * copies, dim=0) for key, value in y.items()}


class ClassifierFreeGuidance:
    """x̂₀ = u + s · (c − u) with c, u the network's conditional and unconditional x̂₀.

    The unconditional branch is the network's own ``uncond=True`` path (ExpGest zeroes the style/speaker
    embedding, the seed input and, in hybrids, the CLIP feature; audio and semantics are kept). Both branches run
    as one batch of 2 (rows: cond, uncond); the network has no cross-batch operations, so this equals two calls.

    Args:
        network: an ExpGest denoiser.
        y: conditions for one sample (every tensor has batch 1).
        scale: s; 1 skips the unconditional call, 0 skips the conditional one.
        batched: False evaluates cond and uncond as two batch-1 calls (exactly the reference's call pattern).
    """

    def __init__(self, network: ExpGestNetwork, y: dict[str, torch.Tensor], scale: float = 3.0,
                 batched: bool = True) -> None:
        self.network = network
        self.y = y
        self.scale = float(scale)
        self.batched = batched
        self._y2 = _repeat_batch(y, 2)
        # Per-call constants made once (no host-to-device copy per step, so no CUDA host sync in the loop).
        self._constants: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._timesteps: dict[tuple[int, int, str], torch.Tensor] = {}

    def _timestep_tensor(self, timestep: int, rows: int, device: torch.device) -> torch.Tensor:
        key = (timestep, rows, str(device))
        if key not in self._timesteps:
            self._timesteps[key] = torch.full((rows,), timestep, dtype=torch.int64, device=device)
        return self._timesteps[key]

    def _branch(self, x_t: Streams, timestep: int, uncond: bool) -> Streams:
        timesteps = self._timestep_tensor(timestep, x_t[0].shape[0], x_t[0].device)
        return tuple(self.network(x_t[0], x_t[1], timesteps, self.y, uncond))

    def _constant(self, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(uncond rows (2·batch,) bool: cond rows then uncond rows, scale s as a (1,) float32 tensor)."""
        key = (batch, str(device))
        if key not in self._constants:
            self._constants[key] = (torch.tensor([False] * batch + [True] * batch, device=device),
                                    torch.tensor([self.scale], dtype=torch.float32, device=device))
        return self._constants[key]

    def __call__(self, x_t: Streams, timestep: int) -> Streams:
        """Guided x̂₀ for both streams (float32, shapes of ``x_t``)."""
        if self.scale == 1.0:
            return self._branch(x_t, timestep, False)
        if self.scale == 0.0:
            return self._branch(x_t, timestep, True)
        if self.batched:
            x2 = [torch.cat([x, x], dim=0) for x in x_t]
            batch = x_t[0].shape[0]
            timesteps = self._timestep_tensor(timestep, 2 * batch, x2[0].device)
            uncond, _ = self._constant(batch, x2[0].device)
            outputs = self.network(x2[0], x2[1], timesteps, self._y2, uncond)
            cond = tuple(out[:batch] for out in outputs)
            uncond_out = tuple(out[batch:] for out in outputs)
        else:
            cond = self._branch(x_t, timestep, False)
            uncond_out = self._branch(x_t, timestep, True)
        # s is a 1-element float32 tensor, as in the reference, so the combination is float32 throughout.
        _, scale = self._constant(x_t[0].shape[0], x_t[0].device)
        return tuple(u + scale * (c - u) for c, u in zip(cond, uncond_out, strict=True))


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(2, thread_name_prefix="expgest-emotion-gradient")
        return _POOL


def overlap_gradients(device: torch.device) -> bool:
    """Whether the emotion gradients run beside the denoiser call (``EmotionGuidance(overlap=True)``).

    On a CPU with at least 2 PyTorch threads: there the denoiser's and the classifier's small matmuls do not keep
    the cores busy one op at a time, and the classifier reads x_t, not the denoiser's output, so all three can
    run at once. Measured by ``bench/bench_guidance.py`` (2-core CPU, released sizes, 2 threads): a guided step
    takes 1.5-1.8x less time, with bit-identical results. With 1 thread (a process given one core, e.g. a
    Ray worker) the overlap would use cores it was not given, so it is off. On a GPU both would queue on one
    stream (no gain) and a second thread would break CUDA-graph capture. ``EXPGEST_OVERLAP_GRADIENTS=0`` turns
    it off.
    """
    return (device.type == "cpu" and torch.get_num_threads() >= 2
            and os.environ.get("EXPGEST_OVERLAP_GRADIENTS", "1") != "0")


class EmotionGuidance:
    """Emotion-classifier guidance on top of any two-stream x̂₀ predictor.

    Per step, for the body then the hand stream: g = 3·strength · ∇_{x_t} log softmax(classifier(x_t))[target]
    (the gradient at the *noisy* x_t; the classifier is noise-aware), then x̂₀ ← ``scheduler.guide_x0``.

    Args:
        denoiser: the (CFG-wrapped) x̂₀ predictor.
        classifier: the emotion classifier (``guidance_gradient``).
        scheduler: the scheduler whose tables define the correction.
        target: [R] int64 emotion index (BEAT order) of each guided row.
        strength: user strength, one for all rows or an (R,) float32 tensor (one per guided row); 0 turns
            guidance off (the wrapper then returns the plain prediction).
        eps_provider: ``(timestep, part) -> Tensor | None``: the classifier's VAE reparameterisation noise for
            that call, (R, d) (None: the classifier draws it). Makes runs reproducible and fixtures replayable.
        rows: (R,) int64 batch rows to guide (None: every row); the others keep the plain prediction.
        overlap: compute the two streams' gradients on worker threads while the denoiser runs on this one
            (``overlap_gradients``). The same operations on the same inputs, so the same values; only the
            schedule differs.
    """

    def __init__(self, denoiser: StreamDenoiser, classifier: EmotionClassifierLike, scheduler: DDIMCosineScheduler,
                 target: torch.Tensor, strength: float | torch.Tensor = 1.0,
                 eps_provider: Callable[[int, str], torch.Tensor | None] | None = None,
                 rows: torch.Tensor | None = None, overlap: bool = False) -> None:
        self.denoiser = denoiser
        self.classifier = classifier
        self.scheduler = scheduler
        self.target = target
        self.strength = strength if isinstance(strength, torch.Tensor) else float(strength)
        self.eps_provider = eps_provider
        self.rows = rows
        self.overlap = overlap
        # s = 3 · strength: a Python float for one strength (exactly the single-clip arithmetic), else per row
        self._scale: float | torch.Tensor = (EMOTION_GUIDANCE_SCALE * self.strength.view(-1, 1, 1, 1)
                                             if isinstance(self.strength, torch.Tensor)
                                             else EMOTION_GUIDANCE_SCALE * self.strength)

    def __call__(self, x_t: Streams, timestep: int) -> Streams:
        """Guided x̂₀ for both streams."""
        if not isinstance(self.strength, torch.Tensor) and self.strength == 0.0:
            return self.denoiser(x_t, timestep)
        # The classifier's noise is drawn in the reference's order (body, then hand); the denoiser draws none.
        eps = [self.eps_provider(timestep, part) if self.eps_provider is not None else None for part in STREAM_PARTS]
        x_rows = [x if self.rows is None else x[self.rows] for x in x_t]
        if self.overlap:
            pending = [_pool().submit(self._gradient, x, part, e)
                       for x, part, e in zip(x_rows, STREAM_PARTS, eps, strict=True)]
            pred_x0 = self.denoiser(x_t, timestep)
            grads = [future.result() for future in pending]
        else:
            pred_x0 = self.denoiser(x_t, timestep)
            grads = [self._gradient(x, part, e) for x, part, e in zip(x_rows, STREAM_PARTS, eps, strict=True)]
        guided = []
        for x0, x, grad in zip(pred_x0, x_rows, grads, strict=True):
            x0_rows = x0 if self.rows is None else x0[self.rows]
            corrected = self.scheduler.guide_x0(x0_rows, timestep, x, grad)
            if self.rows is not None:
                corrected = x0.index_copy(0, self.rows, corrected)
            guided.append(corrected)
        return tuple(guided)

    def _gradient(self, x: torch.Tensor, part: str, eps: torch.Tensor | None) -> torch.Tensor:
        with torch.enable_grad():
            grad = self.classifier.guidance_gradient(x.detach(), part, self.target, scale=self._scale, eps=eps)
        return grad.detach()
