"""Benchmark the ExpGest engine at the released network sizes with random weights.

Prints, measured in one run:
* seconds of compute per second of audio, split into encoders (WavLM-Large, wav2vec 2.0-large ASR, BERT-base
  heads; or CLIP for hybrids), denoising (DDIM with batched classifier-free guidance, optionally emotion guidance)
  and post-processing (stitching, de-normalisation, Savitzky–Golay, decoding to SMPL-X);
* the per-step time of the denoiser (cond + uncond as one batch of 2);
* the bf16-weights vs fp32 maximum deviation of one x̂₀ prediction and of a short chain;
* peak memory (process RSS; CUDA allocator peak on GPUs).

Denoising is timed over ``--steps`` steps of a 1000-step chain and extrapolated linearly to the full 1000
steps (the per-step cost does not depend on t); the extrapolation is stated in the output.

    python bench/bench_expgest.py                     # audio_only, CPU, 2 threads, 20 steps timed
    python bench/bench_expgest.py --mode audio_phrase --device cuda --steps 50
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.engines.base import CancelToken, no_progress  # noqa: E402
from backend.engines.expgest import decode, stitching  # noqa: E402
from backend.engines.expgest.engine import ExpGestComponents, ExpGestEngine, resolve_device  # noqa: E402
from backend.engines.expgest.guidance import ClassifierFreeGuidance, EmotionGuidance  # noqa: E402
from backend.engines.expgest.sampler import sample_ddim  # noqa: E402
from backend.request import GenerationRequest  # noqa: E402
from backend.sampling import DDIMCosineScheduler  # noqa: E402
from backend.vocabulary import MODES, SAMPLE_RATE  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class _Timed:
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> _Timed:
        _sync(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        _sync(self.device)
        self.seconds = time.perf_counter() - self.start


class RandomWavLM:
    """WavLM-Large architecture (transformers) with random weights: the real cost of feature extraction."""

    def __init__(self, device: torch.device) -> None:
        from transformers import WavLMConfig, WavLMModel

        config = WavLMConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                             feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True)
        self.model = WavLMModel(config).to(device).eval()
        self.device = device

    def extract(self, waveform: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            x = torch.as_tensor(waveform, dtype=torch.float32, device=self.device)[None]
            return self.model(x).last_hidden_state[0]


class RandomASR:
    """wav2vec 2.0-large (lv60) CTC architecture with random weights; greedy decoding of the argmax ids."""

    def __init__(self, device: torch.device) -> None:
        from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

        config = Wav2Vec2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                intermediate_size=4096, feat_extract_norm="layer", conv_bias=True,
                                do_stable_layer_norm=True, vocab_size=32)
        self.model = Wav2Vec2ForCTC(config).to(device).eval()
        self.device = device

    def transcribe(self, waveform: np.ndarray) -> str:
        with torch.no_grad():
            x = torch.as_tensor(waveform, dtype=torch.float32, device=self.device)[None]
            ids = self.model(x).logits.argmax(-1)[0].tolist()
        return " ".join(str(i) for i in ids[:40])


class RandomSemantic:
    """Two BERT-base encoders + Linear(768 → d) on [CLS] (the released semantic heads' architecture)."""

    def __init__(self, latent_dim: int, device: torch.device) -> None:
        from transformers import BertConfig, BertModel

        self.body = BertModel(BertConfig()).to(device).eval()
        self.hand = BertModel(BertConfig()).to(device).eval()
        self.linear = torch.nn.Linear(768, latent_dim).to(device)
        self.device = device

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.tensor([[101] + [1000 + (hash(w) % 20000) for w in texts[0].split()][:60] + [102]],
                           device=self.device)
        with torch.no_grad():
            body = self.linear(self.body(input_ids=ids).last_hidden_state[:, 0])
            hand = self.linear(self.hand(input_ids=ids).last_hidden_state[:, 0])
        return body[:, None], hand[:, None]


class RandomCLIP:
    """CLIP ViT-B/32 text tower (transformers) with random weights."""

    def __init__(self, device: torch.device) -> None:
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection

        self.model = CLIPTextModelWithProjection(CLIPTextConfig(projection_dim=512)).to(device).eval()
        self.device = device

    def encode(self, texts: list[str]) -> torch.Tensor:
        ids = torch.randint(1, 49000, (len(texts), 12), device=self.device)
        with torch.no_grad():
            return self.model(input_ids=ids).text_embeds.float()


class _Counting:
    """Accumulate wall time spent inside an encoder."""

    def __init__(self, inner: object, device: torch.device, totals: dict[str, float], key: str) -> None:
        self.inner, self.device, self.totals, self.key = inner, device, totals, key

    def _timed(self, fn, *args):  # type: ignore[no-untyped-def]
        with _Timed(self.device) as timer:
            out = fn(*args)
        self.totals[self.key] = self.totals.get(self.key, 0.0) + timer.seconds
        return out

    def extract(self, waveform):  # type: ignore[no-untyped-def]
        return self._timed(self.inner.extract, waveform)

    def transcribe(self, waveform):  # type: ignore[no-untyped-def]
        return self._timed(self.inner.transcribe, waveform)

    def encode(self, texts):  # type: ignore[no-untyped-def]
        return self._timed(self.inner.encode, texts)

    def __call__(self, texts):  # type: ignore[no-untyped-def]
        return self._timed(self.inner, texts)


def build_components(mode: str, device: torch.device, totals: dict[str, float], emotion: bool) -> ExpGestComponents:
    from models.expgest.checkpoint import build_network
    from models.expgest.config import AudioOnlyConfig, EmotionClassifierConfig, HybridConfig

    torch.manual_seed(0)
    if mode == "audio_only":
        network = build_network(AudioOnlyConfig(), device).eval().requires_grad_(False)
        dim = 1141
    else:
        network = build_network(HybridConfig(variant="phrase" if mode == "audio_phrase" else "text"), device)
        network = network.eval().requires_grad_(False)
        dim = 994
    rng = np.random.default_rng(0)
    components = ExpGestComponents(denoiser=network, mean=rng.normal(size=dim) * 0.1,
                                   std=np.abs(rng.normal(size=dim)) * 0.1 + 0.05,
                                   wavlm=_Counting(RandomWavLM(device), device, totals, "wavlm"))
    if mode == "audio_only":
        components.asr = _Counting(RandomASR(device), device, totals, "asr")
        components.semantic = _Counting(RandomSemantic(network.config.latent_dim, device), device, totals, "bert")
        if emotion:
            classifier = build_network(EmotionClassifierConfig(), device).eval().requires_grad_(False)
            components.emotion_classifier = classifier
    else:
        components.clip = _Counting(RandomCLIP(device), device, totals, "clip")
    return components


def per_step(components: ExpGestComponents, mode: str, device: torch.device, steps: int, precision: str,
             emotion: bool) -> tuple[float, tuple[torch.Tensor, ...]]:
    """Seconds per denoising step (batched CFG, + emotion guidance if on) over ``steps`` steps of the 1000 chain."""
    engine = ExpGestEngine(None, mode, str(device), precision=precision, components=components)
    geometry, layout = engine.geometry, engine.layout
    generator = torch.Generator().manual_seed(1)
    frames = geometry.n_poses
    y: dict[str, torch.Tensor] = {"audio": torch.randn(1, frames, 1024, generator=generator)}
    if mode == "audio_only":
        d = components.denoiser.config.latent_dim
        y.update(style=torch.eye(8)[2:3], text_latent_body=torch.randn(1, 1, d, generator=generator),
                 text_latent_hand=torch.randn(1, 1, d, generator=generator))
    else:
        y.update(speaker_id=torch.eye(4)[:1], clip_text_feat=torch.randn(1, 512, generator=generator))
    y.update(seed_body=torch.zeros(1, len(layout.body), 1, 8), seed_hand=torch.zeros(1, len(layout.hand), 1, 8))
    y = {k: v.to(device) for k, v in y.items()}
    x_T = (torch.randn(1, len(layout.body), 1, frames, generator=generator).to(device),
           torch.randn(1, len(layout.hand), 1, frames, generator=generator).to(device))
    network, classifier = components.networks(precision)
    scheduler = DDIMCosineScheduler()
    scheduler.timesteps = scheduler.timesteps[:steps]        # the first `steps` steps of the full chain
    denoiser = ClassifierFreeGuidance(network, y, 3.0)
    if emotion and components.emotion_classifier is not None:
        denoiser = EmotionGuidance(denoiser, classifier, scheduler,
                                   torch.tensor([2], device=device), 1.0,
                                   lambda t, part: torch.zeros(1, 256, device=device))
    sample_ddim(denoiser, scheduler, x_T)                    # warm-up (allocator, kernels)
    with _Timed(device) as timer:
        out = sample_ddim(denoiser, scheduler, x_T)
    return timer.seconds / steps, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", default="audio_only", choices=MODES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="denoising steps timed (extrapolated to 1000)")
    parser.add_argument("--seconds", type=float, default=8.0, help="audio length for the end-to-end split")
    parser.add_argument("--no-emotion", action="store_true", help="audio_only: time without emotion guidance")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    emotion = args.mode == "audio_only" and not args.no_emotion
    totals: dict[str, float] = {}
    print(f"# ExpGest bench: mode={args.mode} device={device} threads={args.threads} torch={torch.__version__}")
    print("# random weights at the released sizes; denoising timed over "
          f"{args.steps} steps and extrapolated to 1000")
    components = build_components(args.mode, device, totals, emotion)

    step_fp32, out_fp32 = per_step(components, args.mode, device, args.steps, "fp32", False)
    print(f"denoiser step (batched CFG, batch 2): {step_fp32 * 1e3:.1f} ms")
    step_emo = None
    if emotion:
        step_emo, _ = per_step(components, args.mode, device, args.steps, "fp32", True)
        print(f"denoiser step + emotion guidance:     {step_emo * 1e3:.1f} ms")
    step_bf16, out_bf16 = per_step(components, args.mode, device, args.steps, "bf16", False)
    deviation = max((a - b).abs().max().item() for a, b in zip(out_fp32, out_bf16, strict=True))
    scale = max(a.abs().max().item() for a in out_fp32)
    print(f"bf16 weights step: {step_bf16 * 1e3:.1f} ms ({step_fp32 / step_bf16:.2f}x fp32); max |bf16 - fp32| "
          f"after {args.steps} steps = {deviation:.3g} (max |x| {scale:.3g})")

    # End-to-end split over one clip: encoders measured inside the engine, denoising extrapolated.
    geometry = stitching.AUDIO_ONLY_GEOMETRY if args.mode == "audio_only" else stitching.HYBRID_GEOMETRY
    audio = (0.1 * np.sin(np.arange(int(args.seconds * SAMPLE_RATE)) * 0.05)).astype(np.float32)
    plan = stitching.plan_windows(stitching.frames_for_samples(audio.size, geometry), geometry)
    request = GenerationRequest.from_dict({
        "audio": "/bench.wav", "output": "/bench.npz", "engine": "expgest", "models": "/unused", "mode": args.mode,
        "steps": 1, "seed": 0, "emotion": "anger" if emotion else "neutral",
        "text": [] if args.mode == "audio_only" else [{"start_s": 0.0, "end_s": args.seconds,
                                                        "text": "a person waves", "kind": "phrase"}]})
    engine = ExpGestEngine(None, args.mode, str(device), components=components)
    totals.clear()
    with _Timed(device) as whole:
        generated = engine.generate_features(audio, request, no_progress, CancelToken())
    encoders = sum(totals.values())
    with _Timed(device) as post:
        engine.to_motion(generated)
        decode.smooth(generated.features)
    one_step_run = whole.seconds - encoders
    denoise_1000 = plan.n_windows * 1000 * (step_emo if step_emo is not None else step_fp32)
    per_audio = args.seconds
    print(f"\nclip of {args.seconds:.1f} s = {plan.n_windows} windows of {geometry.n_poses} frames")
    print(f"encoders:        {encoders / per_audio:8.3f} s per s of audio  "
          + ", ".join(f"{k} {v:.2f}s" for k, v in sorted(totals.items())))
    print(f"denoising:       {denoise_1000 / per_audio:8.3f} s per s of audio  (1000 steps, extrapolated)")
    print(f"post-processing: {(post.seconds + max(one_step_run - plan.n_windows * step_fp32, 0.0)) / per_audio:8.3f}"
          " s per s of audio  (stitch, de-normalise, SG, decode)")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak_rss:.0f} MiB")
    if device.type == "cuda":
        print(f"peak CUDA allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
