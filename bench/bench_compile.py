"""torch.compile on the ExpGest denoiser: compile time against the per-step gain, and the break-even clip length.

Prints, measured in one run at the released audio_only sizes (random weights): the eager per-step time of the
batched classifier-free-guidance call, the seconds the first compiled call takes (compilation), the compiled
per-step time (median and [min, max] over ``--repeats``), and what that means for a 60 s clip at 1000 steps
(15 windows × 1000 steps): total eager vs compile + compiled. Attention already runs through PyTorch's fused
``scaled_dot_product_attention`` (the local attention) and the fused inference path of ``nn.TransformerEncoder``
in eager mode, so torch.compile can only win on fusing the remaining element-wise work.

    python bench/bench_compile.py                  # inductor, default mode; needs a C++ compiler on the CPU
    python bench/bench_compile.py --mode max-autotune-no-cudagraphs --repeats 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--mode", default="default", help="torch.compile mode")
    parser.add_argument("--clip-seconds", type=float, default=60.0)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from models.expgest.checkpoint import build_network
    from models.expgest.config import AudioOnlyConfig

    torch.manual_seed(0)
    network = build_network(AudioOnlyConfig(), torch.device("cpu")).eval().requires_grad_(False)
    y = {"audio": torch.randn(2, 88, 1024), "style": torch.eye(8)[[2, 2]], "seed_body": torch.randn(2, 451, 1, 8),
         "seed_hand": torch.randn(2, 690, 1, 8), "text_latent_body": torch.randn(2, 1, 256),
         "text_latent_hand": torch.randn(2, 1, 256)}
    x = (torch.randn(2, 451, 1, 88), torch.randn(2, 690, 1, 88))
    timesteps, uncond = torch.tensor([500, 500]), torch.tensor([False, True])

    def timed(fn, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
        out = []
        for _ in range(repeats):
            start = time.perf_counter()
            with torch.no_grad():
                fn(x[0], x[1], timesteps, y, uncond)
            out.append(time.perf_counter() - start)
        return out

    print(f"# bench_compile: released audio_only sizes, random weights, batch 2 (CFG), {args.threads} threads, "
          f"torch {torch.__version__}, mode {args.mode}")
    timed(network, 2)
    eager = timed(network, args.repeats)
    compiled = torch.compile(network, mode=args.mode, dynamic=False)
    start = time.perf_counter()
    try:
        timed(compiled, 1)
    except Exception as error:  # noqa: BLE001 - a missing compiler is a result worth printing
        print(f"torch.compile failed here: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
        return 1
    compile_s = time.perf_counter() - start
    fast = timed(compiled, args.repeats)
    with torch.no_grad():
        reference = network(x[0], x[1], timesteps, y, uncond)
        other = compiled(x[0], x[1], timesteps, y, uncond)
    deviation = max((a - b).abs().max().item() for a, b in zip(reference, other, strict=True))
    e, c = statistics.median(eager), statistics.median(fast)
    print(f"eager step:    {e * 1e3:7.1f} ms [{min(eager) * 1e3:.1f}, {max(eager) * 1e3:.1f}]")
    print(f"compiled step: {c * 1e3:7.1f} ms [{min(fast) * 1e3:.1f}, {max(fast) * 1e3:.1f}]  ({e / c:.2f}x), "
          f"max |compiled - eager| = {deviation:.2e}")
    print(f"compile time (first call): {compile_s:.1f} s")
    calls = int(-(-args.clip_seconds * 20 // 80)) * args.steps
    print(f"{args.clip_seconds:g} s clip, {args.steps} steps: {calls} denoiser calls; eager {calls * e:.1f} s, "
          f"compile + compiled {compile_s + calls * c:.1f} s -> "
          f"{'compile wins' if compile_s + calls * c < calls * e else 'eager wins'}"
          + (f"; break-even after {compile_s / (e - c):.0f} calls" if e > c else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
