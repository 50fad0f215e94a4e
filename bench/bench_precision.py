"""bf16 against fp32 for the ExpGest engine: speed per step, end to end, and the deviation of the final motion.

Prints, measured in one run, for each network size (``tiny``: the fixtures' small networks with their weights
when ``../shared/fixtures/expgest`` exists, else the same sizes with random weights; ``full``: the released sizes
with random weights):

* per-step time of one guided audio_only step (denoiser: cond + uncond as one batch of 2; emotion guidance: the
  classifier gradient of both streams), fp32 and bf16, median and [min, max] over ``--repeats`` repeats, with the
  classifier's cost relative to a denoiser step (issue 14's target: ≤ 0.5×);
* end-to-end seconds of the engine over a clip (windows, sampling with CFG and anger guidance, stitching,
  decoding; encoders are cheap deterministic stand-ins, identical in both runs) and the fp32/bf16 ratio;
* the joint-rotation error (degrees, max and mean over frames × 55 joints) of the final SMPL-X motion:
  bf16 against fp32, next to fp32 against fp32 under perturbations as small as bf16's rounding: another
  torch thread count, and one-ulp noise on the input audio samples. bf16 is "within fp32's spread" when its
  max and mean error are no larger than the larger of the two fp32 spreads.

On a CPU without native bf16 (no avx512_bf16 / amx_bf16 flag) bf16 runs emulated and is slower; the deviation
numbers still hold (the rounding is the same), the speed numbers then only say "do not use bf16 here".

    python bench/bench_precision.py                     # tiny + full, 8 steps, ~3 minutes on 2 cores
    python bench/bench_precision.py --sizes full --steps 20 --repeats 9
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.engines.base import CancelToken, no_progress  # noqa: E402
from backend.engines.expgest.engine import ExpGestComponents, ExpGestEngine  # noqa: E402
from backend.engines.expgest.guidance import EMOTION_GUIDANCE_SCALE  # noqa: E402
from backend.request import GenerationRequest  # noqa: E402
from backend.vocabulary import SAMPLE_RATE  # noqa: E402
from models.expgest.precision import cpu_flags, native_bf16, resolve_precision  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "expgest"


class WaveFeatures:
    """Deterministic stand-in for WavLM: a fixed random projection of 320-sample frames (so audio bits matter)."""

    def __init__(self) -> None:
        self.projection = torch.randn(400, 1024, generator=torch.Generator().manual_seed(3)) / 20.0

    def extract(self, waveform: np.ndarray) -> torch.Tensor:
        samples = torch.from_numpy(np.asarray(waveform, dtype=np.float32))
        frames = samples.unfold(0, 400, 320)
        return torch.tanh(frames @ self.projection * 10.0)


class FixedASR:
    def transcribe(self, waveform: np.ndarray) -> str:
        return "HELLO EVERYONE TODAY I WANT TO TELL YOU SOMETHING"


class TextLatents:
    """Stand-in for the BERT heads: latents from a seeded generator keyed by the text."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(sum(map(ord, texts[0])) % 10_000)
        latent = torch.randn(1, 1, self.dim, generator=generator)
        return latent, -latent


def build(size: str, device: str = "cpu") -> tuple[ExpGestComponents, str]:
    """Denoiser + emotion classifier (+ stand-in encoders on the CPU) at ``size``, the networks on ``device``;
    returns them and a description."""
    from models.expgest.checkpoint import build_network, load_denoiser, load_emotion_classifier
    from models.expgest.config import AudioOnlyConfig, EmotionClassifierConfig

    cpu = torch.device("cpu")
    torch.manual_seed(0)
    if size == "full":
        denoiser = build_network(AudioOnlyConfig(), cpu)
        classifier = build_network(EmotionClassifierConfig(), cpu)
        what = "released sizes, random weights"
    elif (FIXTURES / "audio_only.small.pt").is_file():
        import json

        kwargs = json.loads((FIXTURES / "audio_only.small.json").read_text())["constructor_kwargs"]
        vae = json.loads((FIXTURES / "emo_classifier.small.json").read_text())["vae_kwargs"]
        denoiser = load_denoiser(FIXTURES / "audio_only.small.pt", AudioOnlyConfig.from_official_kwargs(kwargs))
        classifier = load_emotion_classifier(FIXTURES / "emo_classifier.small.pt",
                                             EmotionClassifierConfig.from_official_kwargs(vae))
        what = "the fixtures' small networks and weights"
    else:
        denoiser = build_network(AudioOnlyConfig(latent_dim=80, num_layers=2, ff_size=64, num_heads=2), cpu)
        classifier = build_network(EmotionClassifierConfig(latent_dim=32, ff_size=64, num_layers=3), cpu)
        what = "fixture-sized networks, random weights (fixtures not found)"
    denoiser = denoiser.eval().requires_grad_(False).to(device)
    classifier = classifier.eval().requires_grad_(False).to(device)
    rng = np.random.default_rng(0)
    components = ExpGestComponents(denoiser=denoiser, mean=rng.normal(size=1141) * 0.1,
                                   std=np.abs(rng.normal(size=1141)) * 0.1 + 0.05, wavlm=WaveFeatures(),
                                   asr=FixedASR(), semantic=TextLatents(denoiser.config.latent_dim),
                                   emotion_classifier=classifier)
    return components, what


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Seconds of ``repeats`` calls after one warm-up call."""
    fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def spread(seconds: list[float]) -> str:
    ms = [s * 1e3 for s in seconds]
    return f"{statistics.median(ms):8.1f} ms [{min(ms):.1f}, {max(ms):.1f}]"


def step_inputs(components: ExpGestComponents, rows: int, device: str | torch.device = "cpu"
                ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Conditions y and noisy streams x_t (body, hand) of one audio_only window, ``rows`` rows (seeded, on
    ``device``)."""
    d = components.denoiser.config.latent_dim
    generator = torch.Generator().manual_seed(1)
    y = {"audio": torch.randn(rows, 88, 1024, generator=generator), "style": torch.eye(8)[[2] * rows],
         "seed_body": torch.randn(rows, 451, 1, 8, generator=generator),
         "seed_hand": torch.randn(rows, 690, 1, 8, generator=generator),
         "text_latent_body": torch.randn(rows, 1, d, generator=generator),
         "text_latent_hand": torch.randn(rows, 1, d, generator=generator)}
    x = (torch.randn(rows, 451, 1, 88, generator=generator), torch.randn(rows, 690, 1, 88, generator=generator))
    return {key: value.to(device) for key, value in y.items()}, (x[0].to(device), x[1].to(device))


def step_parts(components: ExpGestComponents, precision: str, repeats: int) -> tuple[list[float], list[float]]:
    """Per-call seconds of the CFG denoiser call (batch 2) and of the emotion gradient (both streams)."""
    network, classifier = components.networks(precision)
    latent = classifier.config.latent_dim
    y, x = step_inputs(components, 2)
    timesteps, uncond = torch.tensor([500, 500]), torch.tensor([False, True])
    target, eps = torch.tensor([2]), torch.zeros(1, latent)

    def denoise() -> None:
        with torch.no_grad():
            network(x[0], x[1], timesteps, y, uncond)

    def gradient() -> None:
        for part, stream in zip(("body", "hand"), x, strict=True):
            classifier.guidance_gradient(stream[:1], part, target, scale=EMOTION_GUIDANCE_SCALE, eps=eps)

    return timed(denoise, repeats), timed(gradient, repeats)


def rotation_error_deg(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Max and mean angle (degrees) of R_a⁻¹ R_b over every frame and joint of two (T, 165) axis-angle arrays."""
    from scipy.spatial.transform import Rotation

    ra = Rotation.from_rotvec(a.reshape(-1, 3).astype(np.float64))
    rb = Rotation.from_rotvec(b.reshape(-1, 3).astype(np.float64))
    angles = np.degrees((ra.inv() * rb).magnitude())
    return float(angles.max()), float(angles.mean())


def run_clip(components: ExpGestComponents, precision: str, audio: np.ndarray, steps: int,
             threads: int) -> tuple[np.ndarray, float]:
    """(T, 165) poses of the clip and the seconds the engine took."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        engine = ExpGestEngine(None, "audio_only", "cpu", precision=precision, components=components)
        request = GenerationRequest.from_dict({
            "audio": "/bench.wav", "output": "/bench.npz", "engine": "expgest", "models": "/unused",
            "mode": "audio_only", "steps": steps, "seed": 7, "emotion": "anger"})
        start = time.perf_counter()
        motion = engine.generate(audio, request, no_progress, CancelToken())
        return motion.poses, time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)


def one_ulp(audio: np.ndarray, seed: int = 5) -> np.ndarray:
    """Every sample moved by one float32 ulp, up or down at random."""
    direction = np.where(np.random.default_rng(seed).random(audio.shape) < 0.5, -np.inf, np.inf).astype(np.float32)
    return np.nextafter(audio, direction).astype(np.float32)


def bench_size(size: str, args: argparse.Namespace) -> dict[str, object]:
    components, what = build(size)
    print(f"\n## {size}: {what}")
    parts = {}
    for precision in ("fp32", "bf16"):
        parts[precision] = step_parts(components, precision, args.repeats)
        denoise, gradient = parts[precision]
        ratio = statistics.median(gradient) / statistics.median(denoise)
        print(f"{precision}: denoiser step {spread(denoise)} | emotion gradient {spread(gradient)} "
              f"= {ratio:.2f}x a denoiser step")
    step_fp32 = statistics.median(parts["fp32"][0]) + statistics.median(parts["fp32"][1])
    step_bf16 = statistics.median(parts["bf16"][0]) + statistics.median(parts["bf16"][1])
    print(f"guided step (denoiser + emotion gradient): fp32/bf16 = {step_fp32 / step_bf16:.2f}x "
          f"(denoiser alone {statistics.median(parts['fp32'][0]) / statistics.median(parts['bf16'][0]):.2f}x)")

    t = np.arange(int(args.seconds * SAMPLE_RATE), dtype=np.float32) / SAMPLE_RATE
    audio = (0.2 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t))).astype(np.float32)
    reference, seconds_fp32 = run_clip(components, "fp32", audio, args.steps, args.threads)
    other_threads = 1 if args.threads != 1 else 2
    threads_run, _ = run_clip(components, "fp32", audio, args.steps, other_threads)
    ulp_run, _ = run_clip(components, "fp32", one_ulp(audio), args.steps, args.threads)
    bf16_run, seconds_bf16 = run_clip(components, "bf16", audio, args.steps, args.threads)
    errors = {f"fp32, threads {other_threads} vs {args.threads}": rotation_error_deg(reference, threads_run),
              "fp32, one-ulp audio noise": rotation_error_deg(reference, ulp_run),
              "bf16 vs fp32": rotation_error_deg(reference, bf16_run)}
    print(f"end to end ({args.seconds:g} s clip, {args.steps} steps per window, anger guidance): fp32 "
          f"{seconds_fp32:.2f} s, bf16 {seconds_bf16:.2f} s, ratio {seconds_fp32 / seconds_bf16:.2f}x")
    for name, (worst, mean) in errors.items():
        print(f"  joint rotation error, {name:28s} max {worst:8.4f} deg  mean {mean:8.5f} deg")
    fp32_max = max(v[0] for k, v in errors.items() if k.startswith("fp32"))
    fp32_mean = max(v[1] for k, v in errors.items() if k.startswith("fp32"))
    within = errors["bf16 vs fp32"][0] <= fp32_max and errors["bf16 vs fp32"][1] <= fp32_mean
    print(f"  bf16 {'IS' if within else 'is NOT'} within fp32's own spread "
          f"(max {fp32_max:.4f} deg, mean {fp32_mean:.5f} deg)")
    return {"within": within}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,full", help="comma-separated: tiny, full")
    parser.add_argument("--steps", type=int, default=8, help="denoising steps per window (respaced schedule)")
    parser.add_argument("--seconds", type=float, default=4.4, help="clip length (4.4 s = 2 windows)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per step measurement")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    flags = cpu_flags()
    native = native_bf16(cpu)
    print(f"# bench_precision: torch {torch.__version__}, {args.threads} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, bf16 flags "
          f"{sorted(f for f in flags if 'bf16' in f) or 'none'} -> native bf16: {native}")
    print(f"# --precision auto here: {resolve_precision('auto', cpu)[1]}")
    verdicts = [bench_size(size.strip(), args)["within"] for size in args.sizes.split(",") if size.strip()]
    print(f"\nverdict: bf16 within fp32's spread at every size: {all(verdicts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
