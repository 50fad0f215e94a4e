"""torch.compile on the ExpGest denoiser and emotion gradient: compile time against the per-step gain, break-even.

Prints, measured in one run at the released audio_only sizes (random weights): the eager per-step time of the
batched classifier-free-guidance call, the seconds the first compiled call takes (compilation), the compiled
per-step time (median and [min, max] over ``--repeats``), and what that means for a 60 s clip at 1000 steps
(15 windows × 1000 steps): total eager vs compile + compiled. Then the same for one step's emotion-guidance
gradient (body and hand, batch 1, through ``compiled.CompiledGuidance`` as the engine runs it): eager and compiled
time, the compile time of each stream's graph, the gradient ÷ denoiser-step ratio eager and compiled, and the
largest relative difference of the compiled gradient from eager. The timed calls are interleaved (eager step,
compiled step, eager gradient, compiled gradient, repeated), so a load change on a shared machine hits all alike.
Attention already runs through PyTorch's fused ``scaled_dot_product_attention`` (the local attention) and the fused
inference path of ``nn.TransformerEncoder`` in eager mode, so torch.compile can only win on fusing the remaining
element-wise work.

    python bench/bench_compile.py                  # inductor, default mode; needs a C++ compiler on the CPU
    python bench/bench_compile.py --mode max-autotune-no-cudagraphs --repeats 20
    python bench/bench_compile.py --only guidance    # the emotion gradient (the denoiser's eager step still timed)

Compile times are those of a first session (a fresh inductor cache); ``--warm-cache`` keeps PyTorch's on-disk
cache (``/tmp/torchinductor_$USER``), which is what a later session on the same machine pays.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if "--warm-cache" not in sys.argv:   # cold compile times: inductor's on-disk cache would hide a first compile
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_compile_inductor_")

import torch  # noqa: E402 - after choosing the inductor cache

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--mode", default="default", help="torch.compile mode")
    parser.add_argument("--clip-seconds", type=float, default=60.0)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--only", choices=("denoiser", "guidance"), help="compile one part (default: both)")
    parser.add_argument("--warm-cache", action="store_true",
                        help="keep inductor's on-disk cache (later sessions' compile time; default: a fresh cache)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# bench_compile: released audio_only sizes, random weights, batch 2 (CFG), {args.threads} threads, "
          f"torch {torch.__version__}, mode {args.mode}, "
          f"{'warm' if args.warm_cache else 'fresh'} inductor cache")
    calls: dict[str, Callable[[], object]] = {}
    compile_s: dict[str, float] = {}
    if args.only != "guidance":
        _denoiser(args.mode, calls, compile_s)
    else:
        calls["step eager"] = _denoiser_call(_released_denoiser())
    if args.only != "denoiser":
        _guidance(calls, compile_s)
    failed = [name for name, seconds in compile_s.items() if seconds < 0]
    if failed:
        return 1
    for call in calls.values():   # warm-up (the compiled ones have run once already)
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.repeats):
        for name, call in calls.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            call()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    _report(times, compile_s, args.clip_seconds, args.steps)
    print("process CPU time per call (all threads; with --threads 1 the measure least disturbed by other jobs): "
          + ", ".join(f"{name} {statistics.median(values) * 1e3:.1f} ms" for name, values in cpu.items()))
    return 0


def _released_denoiser() -> torch.nn.Module:
    from models.expgest.checkpoint import build_network
    from models.expgest.config import AudioOnlyConfig

    torch.manual_seed(0)
    return build_network(AudioOnlyConfig(), torch.device("cpu")).eval().requires_grad_(False)


def _denoiser_call(network: Callable[..., object]) -> Callable[[], object]:
    """One batch-2 CFG denoiser call on fixed random inputs, under no_grad as in the engine."""
    generator = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    y = {"audio": randn(2, 88, 1024), "style": torch.eye(8)[[2, 2]], "seed_body": randn(2, 451, 1, 8),
         "seed_hand": randn(2, 690, 1, 8), "text_latent_body": randn(2, 1, 256), "text_latent_hand": randn(2, 1, 256)}
    x = (randn(2, 451, 1, 88), randn(2, 690, 1, 88))
    timesteps, uncond = torch.tensor([500, 500]), torch.tensor([False, True])

    def call() -> object:
        with torch.no_grad():
            return network(x[0], x[1], timesteps, y, uncond)

    return call


def _first_call(name: str, call: Callable[[], object], compile_s: dict[str, float]) -> object:
    """Run ``call`` once (the compile), recording its seconds under ``name`` (-1 and a line if it failed)."""
    start = time.perf_counter()
    try:
        out = call()
    except Exception as error:  # noqa: BLE001 - a missing compiler is a result worth printing
        print(f"torch.compile failed here ({name}): {type(error).__name__}: {str(error).splitlines()[0][:200]}")
        compile_s[name] = -1.0
        return None
    compile_s[name] = time.perf_counter() - start
    return out


def _denoiser(mode: str, calls: dict[str, Callable[[], object]], compile_s: dict[str, float]) -> None:
    network = _released_denoiser()
    eager, compiled = _denoiser_call(network), _denoiser_call(torch.compile(network, mode=mode, dynamic=False))
    other = _first_call("denoiser", compiled, compile_s)
    if other is None:
        return
    reference = eager()
    deviation = max((a - b).abs().max().item() for a, b in zip(reference, other, strict=True))  # type: ignore
    print(f"denoiser: max |compiled - eager| = {deviation:.2e}")
    calls["step eager"], calls["step compiled"] = eager, compiled


def _guidance(calls: dict[str, Callable[[], object]], compile_s: dict[str, float]) -> None:
    """One step's emotion gradient (body + hand, batch 1), eager and through ``CompiledGuidance``."""
    from backend.engines.expgest.compiled import CompiledGuidance
    from models.expgest.config import EmotionClassifierConfig
    from models.expgest.emotion_classifier import EmotionClassifier

    torch.manual_seed(1)
    classifier = EmotionClassifier(EmotionClassifierConfig()).eval().requires_grad_(False)
    streams = {"body": torch.randn(1, 451, 1, 88), "hand": torch.randn(1, 690, 1, 88)}
    target, eps = torch.tensor([2]), torch.randn(1, classifier.config.latent_dim)
    wrapper = CompiledGuidance(classifier)

    def step(model: Any) -> dict[str, torch.Tensor]:
        with torch.no_grad():   # as in the engine: the gradient enables grad locally
            return {part: model.guidance_gradient(x, part, target, 3.0, eps) for part, x in streams.items()}

    for part, x in streams.items():
        start = time.perf_counter()
        with torch.no_grad():
            wrapper.guidance_gradient(x, part, target, 3.0, eps)
        compile_s[f"gradient {part}"] = time.perf_counter() - start
    if wrapper.failed:
        print(f"torch.compile of the emotion gradient failed here: {wrapper.failed}")
        compile_s["gradient"] = -1.0
        return
    reference, other = step(classifier), step(wrapper)
    deviation = max(((reference[p] - other[p]).abs().max() / reference[p].abs().max()).item() for p in streams)
    print(f"emotion gradient: max |compiled - eager| / max |eager| = {deviation:.1e}")
    calls["gradient eager"] = lambda: step(classifier)
    calls["gradient compiled"] = lambda: step(wrapper)


def _report(times: dict[str, list[float]], compile_s: dict[str, float], clip_seconds: float, steps: int) -> None:
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name + ':':19s} {median[name] * 1e3:7.1f} ms [{min(values) * 1e3:.1f}, {max(values) * 1e3:.1f}]")
    e, c = median["step eager"], median.get("step compiled")
    if c is not None:
        calls = int(-(-clip_seconds * 20 // 80)) * steps
        print(f"denoiser: compiled {e / c:.2f}x faster, compile time (first call) {compile_s['denoiser']:.1f} s; "
              f"{clip_seconds:g} s clip, {steps} steps: {calls} denoiser calls; eager {calls * e:.1f} s, compile + "
              f"compiled {compile_s['denoiser'] + calls * c:.1f} s"
              + (f"; break-even after {compile_s['denoiser'] / (e - c):.0f} calls" if e > c else ""))
    if "gradient compiled" in median:
        g, gc = median["gradient eager"], median["gradient compiled"]
        total = compile_s["gradient body"] + compile_s["gradient hand"]
        print(f"emotion gradient: compiled {g / gc:.2f}x faster, compile time (first call per stream) body "
              f"{compile_s['gradient body']:.1f} s, hand {compile_s['gradient hand']:.1f} s, total {total:.1f} s"
              + (f"; break-even after {total / (g - gc):.0f} guided steps" if g > gc else ""))
        print(f"gradient / denoiser step: eager {g / e:.2f}x"
              + (f", compiled {gc / c:.2f}x" if c is not None else "") + f"; compiled gradient / eager step "
              f"{gc / e:.2f}x")


if __name__ == "__main__":
    raise SystemExit(main())
