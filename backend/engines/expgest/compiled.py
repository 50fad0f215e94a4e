"""torch.compile for the ExpGest denoiser and emotion gradient, used only where the compile time pays back.

Measured by ``bench/bench_compile.py`` (2-core CPU, released audio_only sizes, batch-2 CFG call, torch 2.13,
calls interleaved; docs/speed.md): the compiled denoiser step is only about 1.05x faster than eager (1.04-1.07x
in every run; an earlier 1.38x did not reproduce), with outputs equal to eager to ~1e-6, after a compile of
15-25 s on the first call, so the total wins only after ~5000 denoiser calls. ``auto`` therefore compiles on the
CPU when a request makes at least ``COMPILE_MIN_CALLS`` calls (a margin over that break-even; a 60 s clip at
1000 steps is 15 000), never for ``--faithful`` (the fixtures are eager numerics). Several clips per forward
(``generate_batch``) compile one graph whose batch dimension is dynamic, so the varying batch sizes do not
compile again (measured: the same per-step time as a graph per batch size), for groups whose clips make
``BATCHED_COMPILE_MIN_CALLS`` calls together (batched, compiling gains less per call); their emotion gradient
stays eager. The compiled module is kept on the loaded components, which the server caches, so later requests
reuse it at no cost. On a GPU it is not used unless forced (``EXPGEST_COMPILE=on``): no GPU was available to
measure it, and CUDA graphs cover the per-step launch overhead there.

The emotion classifier's guidance gradient is compiled too (``CompiledGuidance``: forward and input-gradient
backward, one graph per stream, compiled on the first guided step, so requests without an emotion never pay for
it), kept the same way and with the same fallback, for requests whose denoiser is compiled; under ``auto`` only
from ``GUIDANCE_COMPILE_MIN_CALLS`` calls, since its compile takes ~40-50 s against ~15 ms saved per step.

``EXPGEST_COMPILE``: ``auto`` (default), ``on`` (whenever possible) or ``off``. A compile that fails (no C++
compiler, an unsupported op) falls back to eager for the rest of the session, with one log line.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from typing import Any

_LOG = logging.getLogger(__name__)

# denoiser calls per request before auto compiles (break-even measured at ~4000-9000 calls, docs/speed.md)
COMPILE_MIN_CALLS = 8000
# guided steps (windows x steps) before auto also compiles the emotion gradient: its two graphs take ~40-50 s to
# compile and save ~15 ms per step, break-even ~2500-3600; it is compiled only with the denoiser, hence above
# COMPILE_MIN_CALLS (docs/speed.md)
GUIDANCE_COMPILE_MIN_CALLS = 10000
# calls summed over the clips of a generate_batch group before auto compiles its batch-dynamic graph: batched,
# the compiled forward saved only ~2 ms per clip-call (bench_batching --compile), break-even ~11 000
BATCHED_COMPILE_MIN_CALLS = 15000
POLICIES = ("auto", "on", "off")
GUIDED_PARTS = ("body", "hand")  # the classifier's streams, each its own compiled graph


def compile_policy() -> str:
    """``EXPGEST_COMPILE`` (``auto`` when unset or unknown)."""
    value = os.environ.get("EXPGEST_COMPILE", "auto").strip().lower()
    return value if value in POLICIES else "auto"


def has_cpu_compiler() -> bool:
    """Whether inductor can build CPU kernels here (it needs a C++ compiler)."""
    return any(shutil.which(name) for name in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if name)


def should_compile(calls: int, device_type: str, behaviour: str, batched: bool,
                   policy: str | None = None) -> tuple[bool, str]:
    """Whether to compile the denoiser for a request, and why (for the log).

    Args:
        calls: denoiser calls the request will make (windows x steps).
        device_type: ``cpu``, ``cuda`` or ``mps``.
        behaviour: ``default`` or ``faithful``.
        batched: several clips per forward (batch sizes vary: compiled as one graph with a dynamic batch
            dimension, ``CompiledOrEager(dynamic_batch=True)``); ``calls`` is then the sum over the clips.
        policy: ``auto``/``on``/``off``; None reads ``EXPGEST_COMPILE``.
    """
    policy = compile_policy() if policy is None else policy
    if policy == "off":
        return False, "EXPGEST_COMPILE=off"
    if behaviour == "faithful":
        return False, "--faithful runs the reference's eager numerics"
    if device_type == "cpu" and not has_cpu_compiler():
        return False, "no C++ compiler on this machine"
    if policy == "on":
        return True, "EXPGEST_COMPILE=on" + (" (one graph for every batch size)" if batched else "")
    if device_type != "cpu":
        return False, f"not measured on {device_type}"
    least = BATCHED_COMPILE_MIN_CALLS if batched else COMPILE_MIN_CALLS
    if calls < least:
        return False, f"{calls} denoiser calls, fewer than the {least} that repay compiling" + (
            " several clips per forward" if batched else "")
    return True, (f"{calls} denoiser calls repay the one-off compile (measured break-even ~1000)"
                  + (", one graph for every batch size" if batched else ""))


def _describe(error: Exception) -> str:
    first = str(error).splitlines()[0][:200] if str(error) else ""
    return f"{type(error).__name__}: {first}"


def should_compile_guidance(calls: int, policy: str | None = None) -> bool:
    """Whether to compile the emotion gradient too, for a request whose denoiser ``should_compile``.

    Args:
        calls: denoiser calls of the request (windows x steps; a guided request computes one gradient per call).
        policy: ``auto``/``on``/``off``; None reads ``EXPGEST_COMPILE``.
    """
    policy = compile_policy() if policy is None else policy
    return policy == "on" or calls >= GUIDANCE_COMPILE_MIN_CALLS


class CompiledOrEager:
    """The compiled denoiser, falling back to the eager one if compiling fails on the first call.

    torch.compile compiles lazily, so a missing compiler or an unsupported op shows on the first call; later
    failures are the network's own and propagate.
    """

    def __init__(self, eager: Any, dynamic_batch: bool = False) -> None:
        import torch

        self.eager = eager
        # dynamic_batch: one graph for every batch size ≥ 2 (the batch dimension of each input marked dynamic)
        self.compiled: Any = torch.compile(eager, dynamic=None if dynamic_batch else False)
        self.dynamic_batch = dynamic_batch
        self.ready = False
        self.failed: str | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed is not None:
            return self.eager(*args, **kwargs)
        # x_t after the first step inherits the network output's strides: contiguous inputs keep one graph
        args = tuple(_contiguous(value) for value in args)
        if self.dynamic_batch:
            _mark_batch_dynamic([*args, *kwargs.values()])
        if self.ready:
            return self.compiled(*args, **kwargs)
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - any compile failure means: run eager
            self.failed = _describe(error)
            _LOG.warning("torch.compile failed (%s); the denoiser runs eagerly for the rest of this session",
                         self.failed)
            return self.eager(*args, **kwargs)
        self.ready = True
        return out

    @property
    def compiling(self) -> bool:
        """Whether the next call compiles (first call, no failure yet)."""
        return not self.ready and self.failed is None

    def __getattr__(self, name: str) -> Any:  # config, dtype … of the wrapped network
        if name == "eager":
            raise AttributeError(name)
        return getattr(self.eager, name)


def _contiguous(value: Any) -> Any:
    import torch

    return value.contiguous() if isinstance(value, torch.Tensor) else value


def _mark_batch_dynamic(values: list[Any]) -> None:
    """Mark dimension 0 of every tensor (also inside dicts) dynamic, so no batch size compiles again."""
    import torch

    for value in values:
        for tensor in value.values() if isinstance(value, dict) else (value,):
            if isinstance(tensor, torch.Tensor) and tensor.dim() and tensor.shape[0] > 1:
                torch._dynamo.maybe_mark_dynamic(tensor, 0)


class CompiledGuidance:
    """The emotion classifier with a compiled guidance gradient, falling back to eager if compiling fails.

    What is compiled is the classifier's objective ``log_prob_sum`` (forward of the MLD-VAE encoder and head,
    log-softmax, the target's log-probability); ``guidance_gradient`` takes ``torch.autograd.grad`` of it as in
    eager mode, and AOTAutograd compiles that backward too (the weights are frozen, so it computes the input
    gradient only). The noise ε is drawn outside the compiled graph (inductor has its own RNG), so ``eps=None``
    draws the same numbers as eager. One graph per stream (body, hand), each compiled on its first call.

    Attributes:
        eager: the classifier.
        ready: the streams whose compiled gradient has run.
        failed: why compiling failed (None: it did not); the eager gradient is then used for the session.
        compiled_calls: gradients computed by the compiled objective.
    """

    def __init__(self, eager: Any) -> None:
        import torch

        self.eager = eager
        self.objective: Any = torch.compile(eager.log_prob_sum, dynamic=False)
        self.ready: set[str] = set()
        self.failed: str | None = None
        self.compiled_calls = 0
        self._lock = threading.Lock()   # the two streams' gradients may run on two threads (guidance.py overlap)

    def guidance_gradient(self, x: Any, part: str, target: Any, scale: Any = 3.0, eps: Any = None) -> Any:
        """``EmotionClassifier.guidance_gradient`` through the compiled objective (same arguments, same result)."""
        if self.failed is not None:
            return self.eager.guidance_gradient(x, part, target, scale, eps)
        if eps is None:   # drawn once, so a fallback after a failed compile uses the same noise
            eps = self.eager.draw_eps(x.shape[0], part, x.device)
        if part in self.ready:
            with self._lock:
                self.compiled_calls += 1
            return self.eager.guidance_gradient(x, part, target, scale, eps, objective=self.objective)
        try:
            grad = self.eager.guidance_gradient(x, part, target, scale, eps, objective=self.objective)
        except Exception as error:  # noqa: BLE001 - any compile failure means: run eager
            self.failed = _describe(error)
            _LOG.warning("torch.compile of the emotion classifier failed (%s); its guidance gradient runs eagerly "
                         "for the rest of this session", self.failed)
            return self.eager.guidance_gradient(x, part, target, scale, eps)
        with self._lock:
            self.ready.add(part)
            self.compiled_calls += 1
        return grad

    @property
    def compiling(self) -> bool:
        """Whether a later gradient compiles (a stream not run yet, no failure yet)."""
        return len(self.ready) < len(GUIDED_PARTS) and self.failed is None

    def __getattr__(self, name: str) -> Any:  # config … of the wrapped classifier
        if name == "eager":
            raise AttributeError(name)
        return getattr(self.eager, name)


def compiled_network(cache: dict[Any, Any], key: Any, network: Any, dynamic_batch: bool = False
                     ) -> CompiledOrEager:
    """The compiled wrapper of ``network`` kept in ``cache`` under ``key`` (made once, reused by later requests)."""
    if key not in cache:
        cache[key] = CompiledOrEager(network, dynamic_batch)
    return cache[key]


def compiled_classifier(cache: dict[Any, Any], key: Any, classifier: Any) -> CompiledGuidance:
    """The compiled-gradient wrapper of ``classifier`` kept in ``cache`` under ``key`` (made once, reused)."""
    if key not in cache:
        cache[key] = CompiledGuidance(classifier)
    return cache[key]
