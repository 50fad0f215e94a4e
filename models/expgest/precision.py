"""Inference precision of the ExpGest networks: bf16 *weights* (not per-op autocast) where the hardware has it.

Why weights and not ``torch.autocast``: autocast re-casts every fp32 weight to bf16 on every call (a copy of the
whole network per denoising step) and leaves the ops it does not list in fp32, so most of the matmul gain is
lost on the CPU. Here a bf16 copy of the network is made once; its ``forward`` casts its fp32 inputs to bf16 on
entry and returns fp32 (``AudioOnlyDenoiser.forward``, ``EmotionClassifier.classify``), so the sampler, the
classifier-free-guidance combination and the classifier-guidance correction stay fp32.

What stays fp32 inside a bf16 network:

* rotary angles: ``RotaryEmbedding.inv_freq`` keeps fp32 and ``apply_rotary`` takes cos/sin in fp32 (in bf16,
  position 87 × inv_freq would be off by up to 0.2 rad);
* normalisation statistics: PyTorch's LayerNorm kernels accumulate mean and variance of bf16 inputs in fp32
  (CPU and CUDA); the affine parameters are bf16.

``resolve_precision("auto", device)`` picks bf16 only where the hardware computes it natively (CPUs with
AVX512-BF16 or AMX-BF16; CUDA GPUs with bf16 support, compute capability ≥ 8.0); elsewhere bf16 is emulated and
slower than fp32 (measured 6–7× slower on an AVX2 CPU, ``docs/speed.md``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Literal

import torch
from torch import nn

Precision = Literal["fp32", "bf16"]
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# Whether ``auto`` may choose bf16 at all. It stays False until bench/bench_precision.py shows bf16's deviation of
# the final motion from fp32 within fp32's own spread under a perturbation as small as bf16's rounding; see
# docs/speed.md for the measurement that set it.
AUTO_ALLOWS_BF16 = False
# Buffers that must keep fp32 in a bf16 network (see the module docstring).
_FP32_BUFFERS = ("inv_freq",)


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo does not exist, e.g. macOS)."""
    try:
        text = Path(cpuinfo).read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16(device: torch.device, flags: set[str] | None = None) -> bool:
    """Whether ``device`` computes bf16 matmuls natively (fast), not by emulation.

    Args:
        device: the inference device.
        flags: CPU flags (default: read from /proc/cpuinfo); for tests.

    Returns:
        CPU: an AVX512-BF16 or AMX-BF16 flag is present (or PyTorch reports an AMX capability);
        CUDA: ``torch.cuda.is_bf16_supported()`` and compute capability ≥ 8.0 (Ampere or newer); else False.
    """
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        major, _ = torch.cuda.get_device_capability(device)
        return bool(torch.cuda.is_bf16_supported()) and major >= 8
    if device.type == "cpu":
        flags = cpu_flags() if flags is None else flags
        capability = str(torch.backends.cpu.get_cpu_capability()).upper()
        return any(flag in flags for flag in CPU_BF16_FLAGS) or "AMX" in capability
    return False


def resolve_precision(precision: str, device: torch.device, *, faithful: bool = False,
                      flags: set[str] | None = None) -> tuple[Precision, str]:
    """The precision a request runs at, and why (one sentence for logs and results).

    Args:
        precision: ``fp32`` | ``bf16`` | ``auto``.
        device: the inference device.
        faithful: the reference-numerics mode, always fp32 under ``auto``.
        flags: CPU flags (tests).

    Returns:
        (``fp32`` or ``bf16``, reason).

    Raises:
        ValueError: an unknown precision.
    """
    if precision in ("fp32", "bf16"):
        return precision, f"{precision} as requested"  # type: ignore[return-value]
    if precision != "auto":
        raise ValueError(f"Unknown precision {precision!r}; use auto, fp32 or bf16.")
    if faithful:
        return "fp32", "auto: fp32 because --faithful reproduces the reference numerics"
    if not native_bf16(device, flags):
        return "fp32", f"auto: fp32 because this {device.type.upper()} has no native bf16 (bf16 would be emulated)"
    if not AUTO_ALLOWS_BF16:
        return "fp32", ("auto: fp32; this device has native bf16, but bf16's deviation of the final motion was not "
                        "within fp32's own spread (docs/speed.md), so choose --precision bf16 explicitly for speed")
    return "bf16", "auto: bf16 because this device computes bf16 natively"


def to_bf16(network: nn.Module) -> nn.Module:
    """A bf16 copy of an eval-mode network for inference (the fp32 original is left untouched).

    Parameters and floating buffers become bf16 except ``RotaryEmbedding.inv_freq`` (fp32). The copy's forward
    takes and returns fp32 tensors (it casts on entry and exit).

    Args:
        network: ``AudioOnlyDenoiser``, ``HybridDenoiser`` or ``EmotionClassifier`` (frozen, eval).

    Returns:
        The bf16 copy (eval, frozen).
    """
    clone = copy.deepcopy(network).eval().requires_grad_(False)
    kept = {name: buffer.clone() for name, buffer in clone.named_buffers()
            if name.rsplit(".", 1)[-1] in _FP32_BUFFERS}
    clone.to(torch.bfloat16)
    for name, value in kept.items():
        owner_name, _, attribute = name.rpartition(".")
        owner = clone.get_submodule(owner_name) if owner_name else clone
        owner.register_buffer(attribute, value, persistent=True)
    return clone


def network_dtype(network: nn.Module) -> torch.dtype:
    """The dtype of the first floating parameter (fp32 for an empty network)."""
    for parameter in network.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.float32
