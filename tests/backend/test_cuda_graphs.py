"""CUDA graphs for the denoising loop: the CPU guard here; the replay itself only where a CUDA GPU exists."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("models.expgest.checkpoint")
from backend.engines.expgest.cuda_graphs import CUDAGraphNetwork, wrap_for_device  # noqa: E402
from models.expgest.checkpoint import build_network  # noqa: E402
from models.expgest.config import AudioOnlyConfig  # noqa: E402

TINY = AudioOnlyConfig(latent_dim=80, num_layers=1, ff_size=32, num_heads=4)


def _inputs(device):
    generator = torch.Generator().manual_seed(0)
    y = {"audio": torch.randn(2, 88, 1024, generator=generator), "style": torch.eye(8)[[2, 2]],
         "seed_body": torch.randn(2, 451, 1, 8, generator=generator),
         "seed_hand": torch.randn(2, 690, 1, 8, generator=generator),
         "text_latent_body": torch.randn(2, 1, 80, generator=generator),
         "text_latent_hand": torch.randn(2, 1, 80, generator=generator)}
    x = (torch.randn(2, 451, 1, 88, generator=generator), torch.randn(2, 690, 1, 88, generator=generator))
    return ([t.to(device) for t in x], torch.tensor([700, 700], device=device), {k: v.to(device) for k, v in y.items()},
            torch.tensor([False, True], device=device))


def test_off_cuda_the_network_is_used_as_it_is():
    network = build_network(TINY, torch.device("cpu")).eval()
    assert wrap_for_device(network, torch.device("cpu")) is network
    assert wrap_for_device(network, torch.device("cuda"), enabled=False) is network


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_graph_replay_matches_eager_on_cuda():
    device = torch.device("cuda")
    network = build_network(TINY, device).eval().requires_grad_(False)
    wrapped = wrap_for_device(network, device)
    assert isinstance(wrapped, CUDAGraphNetwork)
    x, timesteps, y, uncond = _inputs(device)
    with torch.no_grad():
        eager = network(x[0], x[1], timesteps, y, uncond)
        for step in (700, 300):   # new values through the same static buffers
            timesteps = torch.full((2,), step, device=device)
            eager = network(x[0], x[1], timesteps, y, uncond)
            replayed = wrapped(x[0], x[1], timesteps, y, uncond)
            for a, b in zip(eager, replayed, strict=True):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert len(wrapped._graphs) == 1
