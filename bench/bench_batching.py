"""Several clips per forward: aggregate speed of ``ExpGestEngine.generate_batch`` against clips one after another.

Prints, measured in one run at the released audio_only sizes (random weights, stand-in encoders as in
``bench_precision.py``): seconds for ``--clips`` clips generated one after another, then with 2, 4 and 8 clips
per forward (median and [min, max] over ``--repeats``), the aggregate speed-up, and the largest difference of
any clip's poses from its solo run (degrees of joint rotation; the same seeds must give the same motion).

    python bench/bench_batching.py                      # 8 clips of 4 s, 5 steps, emotion guidance, ~3 min
    python bench/bench_batching.py --no-emotion --steps 10 --repeats 3
    python bench/bench_batching.py --compile --batches 4,8     # each size also compiled (EXPGEST_COMPILE=on)

With ``--compile`` every size also runs with the denoiser compiled (several clips per forward: one graph with a
dynamic batch dimension; one clip: a static graph and, as ``on`` does, the compiled emotion gradient). The
compiles are paid in a warm-up run of each size first, so the times are those of a session's later requests.

It also prints the real-time factor: seconds of computing per second of audio, for clips one at a time and
aggregated over the batched clips (the issue's GPU targets: ≤ 0.15 for one clip, ≥ 50× real time aggregated,
both at 1000 steps). ``EXPGEST_CUDA_GRAPHS=0`` runs the CUDA path without graph replay.

    python bench/bench_batching.py --device cuda --steps 1000 --batches 8 --repeats 1   # the GPU targets
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_precision import build, rotation_error_deg  # noqa: E402

from backend.engines.base import CancelToken, no_progress  # noqa: E402
from backend.engines.expgest.engine import ExpGestEngine  # noqa: E402
from backend.request import GenerationRequest  # noqa: E402
from backend.vocabulary import EMOTIONS, SAMPLE_RATE  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="full", choices=("tiny", "full"))
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length (4 s = 1 window)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batches", default="2,4,8", help="clips per forward to compare with 1")
    parser.add_argument("--no-emotion", action="store_true")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--compile", action="store_true", help="also time every size compiled (after a warm-up)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    components, what = build(args.size, args.device)
    engine = ExpGestEngine(None, "audio_only", args.device, precision=args.precision, components=components)
    emotions = ["neutral"] if args.no_emotion else [*EMOTIONS[1:4], EMOTIONS[0]]  # happiness, anger, sadness, neutral
    t = np.arange(int(args.seconds * SAMPLE_RATE), dtype=np.float32) / SAMPLE_RATE
    clips = []
    for i in range(args.clips):
        audio = (0.2 * np.sin(2 * np.pi * (150 + 10 * i) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.1 * t)))
        request = GenerationRequest.from_dict({
            "audio": "/b.wav", "output": "/b.npz", "engine": "expgest", "models": "/unused", "mode": "audio_only",
            "steps": args.steps, "seed": i, "emotion": emotions[i % len(emotions)]})
        clips.append((audio.astype(np.float32), request))
    print(f"# bench_batching: {what}; {args.clips} clips of {args.seconds:g} s, {args.steps} steps per window, "
          f"emotion guidance {'off' if args.no_emotion else 'on (3 of 4 clips)'}, {args.threads} threads, "
          f"{torch.cuda.get_device_name(0) if engine.device.type == 'cuda' else 'CPU'}, {engine.precision}, "
          f"torch {torch.__version__}")

    def run(per_forward: int, mode: str) -> tuple[float, float, list]:
        os.environ["EXPGEST_COMPILE"] = mode
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        if per_forward == 1:
            out = [engine.generate(a, r, no_progress, CancelToken()) for a, r in clips]
        else:
            out = engine.generate_batch(clips, [no_progress] * len(clips), CancelToken(), per_forward)
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, time.process_time() - start_cpu, out

    engine.generate(*clips[0], no_progress, CancelToken())   # warm-up (allocator, first-call costs)
    sizes = [1] + [int(b) for b in args.batches.split(",")]
    modes = ["off", "on"] if args.compile else ["off"]
    for size in sizes if args.compile else []:   # the compiles, once per session
        start = time.perf_counter()
        run(size, "on")
        print(f"warm-up, {size} clip(s) per forward, compiled: {time.perf_counter() - start:.1f} s")
    times: dict[tuple[int, str], list[float]] = {(size, mode): [] for size in sizes for mode in modes}
    cpu: dict[tuple[int, str], list[float]] = {key: [] for key in times}
    outputs: dict[tuple[int, str], list] = {}
    for _ in range(args.repeats):   # interleaved, so a load change on a shared machine hits every size alike
        for key in times:
            seconds, cpu_seconds, outputs[key] = run(*key)
            times[key].append(seconds)
            cpu[key].append(cpu_seconds)
    base, solo = times[1, "off"], outputs[1, "off"]
    audio_seconds = args.clips * args.seconds
    for key, seconds in times.items():
        per_forward, mode = key
        worst = max(rotation_error_deg(s.poses, m.poses)[0] for s, m in zip(solo, outputs[key], strict=True))
        median = statistics.median(seconds)
        versus = statistics.median(times[per_forward, "off"]) / median
        print(f"{per_forward} clip(s) per forward{', compiled' if mode == 'on' else ''}: "
              f"{median:7.2f} s [{min(seconds):.2f}, {max(seconds):.2f}] (CPU {statistics.median(cpu[key]):.2f} s)"
              f"  aggregate speed-up {statistics.median(base) / median:.2f}x"
              + (f" (compiled vs eager at this size {versus:.2f}x)" if mode == "on" else "")
              + f"  max joint rotation difference from solo runs {worst:.5f} deg"
              + f"  real-time factor {median / audio_seconds:.3f} ({audio_seconds / median:.1f}x real time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
