"""Speed of one ExpGest denoising step (full-size networks, random weights): batched CFG vs two calls.

Prints, for each network, the time of one classifier-free-guidance step computed as one batch-2 call
(conditional + unconditional rows, ``uncond`` a bool tensor) and as two batch-1 calls, and their ratio,
plus the emotion-guidance gradient (body + hand) time.
Run: ``python bench/bench_expgest_networks.py [--device cuda]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.expgest import (  # noqa: E402
    AudioOnlyConfig,
    AudioOnlyDenoiser,
    EmotionClassifier,
    EmotionClassifierConfig,
    HybridConfig,
    HybridDenoiser,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device: torch.device, repeats: int) -> float:
    fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def _inputs(kind: str, batch: int, device: torch.device, d: int) -> tuple:
    g = torch.Generator().manual_seed(0)
    if kind == "audio_only":
        cb, ch, frames = 451, 690, 88
        y = {"audio": torch.randn(batch, frames, 1024, generator=g), "style": torch.eye(8)[[2] * batch],
             "seed_body": torch.randn(batch, cb, 1, 8, generator=g),
             "seed_hand": torch.randn(batch, ch, 1, 8, generator=g),
             "text_latent_body": torch.randn(batch, 1, d, generator=g),
             "text_latent_hand": torch.randn(batch, 1, d, generator=g)}
    else:
        cb, ch, frames = 238, 756, 180
        y = {"audio": torch.randn(batch, frames, 1024, generator=g), "speaker_id": torch.eye(4)[[0] * batch],
             "seed_body": torch.zeros(batch, cb, 1, 8), "seed_hand": torch.zeros(batch, ch, 1, 8),
             "clip_text_feat": torch.randn(batch, 512, generator=g)}
    x_body, x_hand = torch.randn(batch, cb, 1, frames, generator=g), torch.randn(batch, ch, 1, frames, generator=g)
    t = torch.full((batch,), 500, dtype=torch.long)
    return (x_body.to(device), x_hand.to(device), t.to(device), {k: v.to(device) for k, v in y.items()})


def _bench_denoiser(kind: str, model: torch.nn.Module, device: torch.device, repeats: int) -> None:
    d = model.config.latent_dim
    one = _inputs(kind, 1, device, d)
    two = _inputs(kind, 2, device, d)
    mask = torch.tensor([False, True], device=device)
    with torch.no_grad():
        t_two = _time(lambda: model(*two, uncond=mask), device, repeats)
        t_sep = _time(lambda: (model(*one, uncond=False), model(*one, uncond=True)), device, repeats)
    print(f"{kind:13s} CFG step: batch-2 {t_two * 1e3:8.2f} ms, two calls {t_sep * 1e3:8.2f} ms, "
          f"speed-up {t_sep / t_two:4.2f}x; 1000 steps ≈ {t_two * 1000:6.1f} s per window")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for kind, model in (("audio_only", AudioOnlyDenoiser(AudioOnlyConfig())),
                        ("audio_phrase", HybridDenoiser(HybridConfig(variant="phrase")))):
        _bench_denoiser(kind, model.to(device).eval().requires_grad_(False), device, args.repeats)
    classifier = EmotionClassifier(EmotionClassifierConfig()).to(device).eval().requires_grad_(False)
    x_body, x_hand = torch.randn(1, 451, 1, 88, device=device), torch.randn(1, 690, 1, 88, device=device)
    target = torch.tensor([2], device=device)

    def guide() -> None:
        classifier.guidance_gradient(x_body, "body", target)
        classifier.guidance_gradient(x_hand, "hand", target)

    with torch.no_grad():
        t_guide = _time(guide, device, args.repeats)
    print(f"emotion guidance (body + hand gradient): {t_guide * 1e3:8.2f} ms per step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
