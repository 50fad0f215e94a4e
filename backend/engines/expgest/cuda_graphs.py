"""CUDA graphs for the denoiser call of the sampling loop (CUDA only; NOT MEASURED: no GPU was available).

One denoising step launches a few hundred small kernels; on a GPU their launch overhead, not the arithmetic,
bounds the step at ExpGest's sizes (batch 2 × 90 tokens). ``CUDAGraphNetwork`` captures the network's forward
once per input signature (shapes, dtypes, condition keys) into a ``torch.cuda.CUDAGraph`` and replays it: each
call copies the inputs into the graph's static buffers (device-to-device), replays, and returns copies of the
static outputs. The loop around it does no host synchronisation: the scheduler's coefficient tables and the
guidance wrapper's constant tensors live on the device (``scheduling_ddim_cosine._coefficient``,
``ClassifierFreeGuidance._constant``), and nothing reads a value back before the window ends.

The emotion classifier's gradient is not captured (autograd inside graphs needs more care and was not
measurable here); it runs eagerly between replays.

Status: written and reviewed, exercised on the CPU only through its guard (``wrap_for_device`` returns the
network unchanged off CUDA); the CUDA path itself has never run. ``tests/backend/test_cuda_graphs.py`` holds a
CUDA test that compares replayed and eager outputs, skipped without a GPU.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

_LOG = logging.getLogger(__name__)
_WARMUP_CALLS = 3   # eager calls on a side stream before capture (cuBLAS workspaces, lazy init, cached masks)


class CUDAGraphNetwork:
    """Replay a captured forward of ``network`` (``ExpGestNetwork`` call signature) on CUDA.

    Args:
        network: the denoiser (eval mode, on a CUDA device).
    """

    def __init__(self, network: Any) -> None:
        self.network = network
        self.config = getattr(network, "config", None)
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, list[torch.Tensor], tuple[torch.Tensor, ...]]] = {}

    @staticmethod
    def _signature(inputs: list[torch.Tensor]) -> tuple:
        return tuple((tuple(t.shape), t.dtype, str(t.device)) for t in inputs)

    def __call__(self, x_body: torch.Tensor, x_hand: torch.Tensor, timesteps: torch.Tensor,
                 y: dict[str, torch.Tensor], uncond: bool | torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The network's outputs for these inputs, by graph replay (captured on first use of a signature)."""
        keys = sorted(y)
        uncond_t = (uncond if isinstance(uncond, torch.Tensor) else
                    torch.full((x_body.shape[0],), bool(uncond), dtype=torch.bool, device=x_body.device))
        inputs = [x_body, x_hand, timesteps, uncond_t, *(y[k] for k in keys)]
        signature = (tuple(keys), self._signature(inputs))
        entry = self._graphs.get(signature)
        if entry is None:
            entry = self._capture(keys, inputs)
            self._graphs[signature] = entry
        graph, static_inputs, static_outputs = entry
        for static, value in zip(static_inputs, inputs, strict=True):
            static.copy_(value, non_blocking=True)
        graph.replay()
        return tuple(out.clone() for out in static_outputs)

    def _capture(self, keys: list[str], inputs: list[torch.Tensor]
                 ) -> tuple[torch.cuda.CUDAGraph, list[torch.Tensor], tuple[torch.Tensor, ...]]:
        static = [t.clone() for t in inputs]

        def forward() -> tuple[torch.Tensor, ...]:
            y = dict(zip(keys, static[4:], strict=True))
            return tuple(self.network(static[0], static[1], static[2], y, static[3]))

        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(_WARMUP_CALLS):
                forward()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            outputs = forward()
        _LOG.info("captured a CUDA graph for the denoiser (batch %d)", inputs[0].shape[0])
        return graph, static, outputs


def wrap_for_device(network: Any, device: torch.device, enabled: bool = True) -> Any:
    """``CUDAGraphNetwork(network)`` on a CUDA device when ``enabled``, else ``network`` itself (CPU, MPS)."""
    if enabled and device.type == "cuda" and torch.cuda.is_available():
        return CUDAGraphNetwork(network)
    return network
