"""What emotion guidance adds to a denoising step, with the gradients computed after the denoiser or beside it.

The emotion classifier reads the noisy x_t, not the denoiser's output, so its two gradients (body, hand) can run
on worker threads while the CFG denoiser call runs (``EmotionGuidance(overlap=True)``, the engine's default on the
CPU). Prints, measured in one run at the released audio_only sizes (random weights), per guided step:

* the CFG denoiser call alone (batch 2);
* the guided step with the gradients after the denoiser (``overlap=False``) and beside it (``overlap=True``);
* what guidance adds, as a multiple of the denoiser step (the issue's target: ≤ 0.5×);
* the largest difference between the two schedules' guided x̂₀ (the same operations, so 0 is expected).

Repeats are interleaved (a load change on a shared machine hits every variant alike); times are median
[min, max].

    python bench/bench_guidance.py                 # released sizes, 2 threads, 20 repeats, ~1 min
    python bench/bench_guidance.py --threads 1 --repeats 40
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_precision import build, spread, step_inputs  # noqa: E402

from backend.engines.expgest.guidance import ClassifierFreeGuidance, EmotionGuidance  # noqa: E402
from backend.sampling import DDIMCosineScheduler  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="full", choices=("tiny", "full"))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    components, what = build(args.size, args.device)
    device = torch.device(args.device)
    network, classifier = components.networks(args.precision)
    y, x_t = step_inputs(components, 1, device)
    eps = torch.zeros(1, classifier.config.latent_dim, device=device)
    scheduler = DDIMCosineScheduler()
    cfg = ClassifierFreeGuidance(network, y, 3.0)
    variants = {
        "denoiser alone (CFG, batch 2)": cfg,
        "guided, gradients after": EmotionGuidance(cfg, classifier, scheduler, torch.tensor([2], device=device), 1.0,
                                                   lambda t, part: eps, overlap=False),
        "guided, gradients beside": EmotionGuidance(cfg, classifier, scheduler, torch.tensor([2], device=device), 1.0,
                                                    lambda t, part: eps, overlap=True),
    }
    print(f"# bench_guidance: {what}; {args.device}, {args.precision}, {args.threads} threads, "
          f"torch {torch.__version__}, "
          f"{args.repeats} interleaved repeats")
    outputs = {}
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.inference_mode():
        for name, step in variants.items():   # warm-up, and the outputs to compare
            outputs[name] = step(x_t, 500)
        for _ in range(args.repeats):
            for name, step in variants.items():
                start = time.perf_counter()
                step(x_t, 500)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["denoiser alone (CFG, batch 2)"])
    for name, seconds in times.items():
        added = (statistics.median(seconds) - base) / base
        note = "" if name.startswith("denoiser") else f"  guidance adds {added:.2f}x a denoiser step"
        print(f"{name:32s} {spread(seconds)}{note}")
    after, beside = outputs["guided, gradients after"], outputs["guided, gradients beside"]
    difference = max(float((a - b).abs().max()) for a, b in zip(after, beside, strict=True))
    print(f"largest |x̂₀ after − x̂₀ beside|: {difference:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
