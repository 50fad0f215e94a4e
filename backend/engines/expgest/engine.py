"""The ExpGest diffusion engine: audio (+ text, emotion, speaker) → SMPL-X motion at 20 fps.

Pipeline per clip (spec §0.2, with the fixes of §8 unless ``behaviour="faithful"``):

1. Plan windows (88 frames for audio_only, 180 for the hybrids; 8 overlap/seed frames) and cut the audio.
2. Per window: WavLM-Large features of the window audio (resampled to the window length); audio_only also a
   semantic latent of what is said (ASR → two BERT heads; every window in ``default``, window 0 only in
   ``faithful``, as the reference), the emotion one-hot and the seed frames; hybrids a CLIP text feature of the
   annotation covering the window and the speaker one-hot.
3. DDIM over the (respaced) cosine schedule with classifier-free guidance and, for audio_only with a
   non-neutral emotion, emotion-classifier guidance; noise from a seeded CPU generator (device independent).
4. Stitch windows (``stitching.py``), de-normalise, Savitzky–Golay smooth, decode (``decode.py``).

Everything heavy is loaded once per (weights folder, mode, device) and cached for the process.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ...errors import DeviceError, EngineError, WeightsError
from ...model_errors import translated
from ...motion.motion import Motion
from ...motion.skeleton import REST_JOINTS
from ...request import GenerationRequest
from ...sampling import DDIMCosineScheduler
from ...vocabulary import BEHAVIOURS, EMOTIONS, MODES, PRECISIONS, Behaviour, Mode, canonical_mode, one_of
from ..base import CancelToken, ProgressFn
from . import decode, stitching
from .batching import WindowBatcher, WindowJob, run_window_jobs
from .streams import AUDIO_ONLY_LAYOUT, HYBRID_LAYOUT, StreamLayout

FPS = 20
N_SPEAKERS = 4
CLIP_DIM = 512
_LOG = logging.getLogger(__name__)
# Clips sampled together by generate_batch unless told otherwise (docs/speed.md: measured aggregate speed-up).
DEFAULT_CLIPS_PER_FORWARD = 4


class WavLMLike(Protocol):
    def extract(self, waveform: np.ndarray) -> torch.Tensor: ...


class ASRLike(Protocol):
    def transcribe(self, waveform: np.ndarray) -> str: ...


class CLIPLike(Protocol):
    def encode(self, texts: list[str]) -> torch.Tensor: ...


@dataclass
class ExpGestComponents:
    """Loaded networks and encoders for one mode.

    Attributes:
        denoiser: ``AudioOnlyDenoiser`` or ``HybridDenoiser`` (eval mode).
        mean, std: (C,) float64 feature statistics (1141 or 994).
        wavlm: ``extract(waveform (N,) f32 16 kHz) -> (T, 1024)``.
        asr: audio_only: ``transcribe(waveform) -> str``.
        semantic: audio_only: ``(transcripts) -> (latent_body, latent_hand)`` each (B, 1, d).
        emotion_classifier: audio_only: ``EmotionClassifier`` (None: no emotion guidance).
        clip: hybrids: ``encode(list[str]) -> (B, 512)``.
        cast: the bf16 copies of the networks (``networks``), made once.
        compiled: the compiled denoisers and emotion gradients (``compiled.py``), made once and reused by later
            requests.
    """

    denoiser: torch.nn.Module
    mean: np.ndarray
    std: np.ndarray
    wavlm: WavLMLike
    asr: ASRLike | None = None
    semantic: Callable[[Sequence[str]], tuple[torch.Tensor, torch.Tensor]] | None = None
    emotion_classifier: Any | None = None
    clip: CLIPLike | None = None
    cast: dict[tuple[str, int, int], Any] = field(default_factory=dict, repr=False)
    compiled: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)  # compiled.py, per process

    def networks(self, precision: str) -> tuple[torch.nn.Module, Any | None]:
        """(denoiser, emotion classifier) at ``precision``; bf16 copies are made once and kept here."""
        if precision == "fp32":
            return self.denoiser, self.emotion_classifier
        from models.expgest.precision import to_bf16

        key = (precision, id(self.denoiser), id(self.emotion_classifier))
        if key not in self.cast:
            classifier = None if self.emotion_classifier is None else to_bf16(self.emotion_classifier)
            self.cast.clear()   # one cast copy at a time (the originals changed, or a first use)
            self.cast[key] = (to_bf16(self.denoiser), classifier)
        return self.cast[key]


@dataclass
class GeneratedFeatures:
    """Engine output before decoding: de-normalised, smoothed feature frames at 20 fps.

    Attributes:
        features: (T, 1141) BEAT features (audio_only) or (T, 994) SMPL-X features (hybrids), float64.
        mode: the mode that produced them.
        behaviour: ``default`` or ``faithful`` (selects the decoder variant).
        fps: 20.
        info: per-window details (texts, transcripts, emotions) for logs and summaries.
    """

    features: np.ndarray
    mode: Mode
    behaviour: Behaviour
    fps: float = FPS
    info: dict[str, Any] = field(default_factory=dict)


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA, else MPS, else CPU; an explicit device must exist.

    Raises:
        DeviceError: the requested device is not available.
    """
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but no CUDA GPU is available to PyTorch. "
                          "Choose device 'auto' or 'cpu', or install a CUDA build of PyTorch.")
    if device == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise DeviceError("Apple MPS was requested but is not available. Choose device 'auto' or 'cpu'.")
    if device not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"Unknown device {device!r}; use auto, cpu, cuda or mps.")
    return torch.device(device)


def _load_statistics(path: Path, key: str) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                if key not in data.files:
                    raise WeightsError(f"{path} has no '{key}' array (found {data.files}). Use the released file.")
                data = data[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # truncated or not numpy
        raise WeightsError(f"Could not read the statistics file {path}: {exc}. Replace it with the file from the "
                           "released ExpGest weights.") from None
    return np.asarray(data, dtype=np.float64).reshape(-1)


def _present(path: Path | None, what: str) -> Path:
    """A file ``find_weights`` found for the mode (it raises, naming the file, when one is missing)."""
    if path is None:
        raise WeightsError(f"The weights folder has no {what} for this mode; run `python -m backend models check "
                           "DIR` to see what is missing and where it goes.")
    return path


_CACHE: dict[tuple[str, str, str], ExpGestComponents] = {}
_CACHE_LOCK = threading.Lock()


@translated()
def load_components(models_dir: str | Path, mode: Mode, device: torch.device) -> ExpGestComponents:
    """Load (once per process) everything ``mode`` needs from a weights folder.

    Args:
        models_dir: the folder laid out as ``models/README.md`` describes.
        mode: ``audio_only``, ``audio_phrase`` or ``audio_text``.
        device: where the networks run.

    Returns:
        The components (cached; the same object for the same arguments).

    Raises:
        WeightsError: missing, unsafe or mismatching files, naming what to put where.
    """
    key = (str(Path(models_dir).resolve()), mode, str(device))
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        from models.encoders.wavlm import load_wavlm
        from models.expgest.checkpoint import load_denoiser
        from models.expgest.config import AudioOnlyConfig, HybridConfig
        from models.layout import find_weights

        layout = find_weights(models_dir, mode)
        denoiser = load_denoiser(layout.denoiser, None, device)
        config = denoiser.config
        found = ("audio_only" if isinstance(config, AudioOnlyConfig) else
                 f"audio_{config.variant}" if isinstance(config, HybridConfig) else type(config).__name__)
        if found != mode:
            raise WeightsError(f"{layout.denoiser} is the {found} model, but the {mode} mode was requested. Put the "
                               f"{mode} model.pt in its own folder (see models/README.md) or choose mode {found}.")
        expected = {"audio_only": 1141, "audio_phrase": 994, "audio_text": 994}[mode]
        mean = _load_statistics(layout.mean, "mean")
        std = _load_statistics(layout.std, "std")
        for name, stats in (("mean", mean), ("std", std)):
            if stats.shape != (expected,):
                raise WeightsError(f"The {mode} {name} file {getattr(layout, name)} has {stats.size} values, expected "
                                   f"{expected}. Use the statistics file that came with this mode's model.pt.")
            if not np.isfinite(stats).all():
                raise WeightsError(f"The {mode} {name} file {getattr(layout, name)} contains NaN or infinite values. "
                                   "Replace it with the file from the released ExpGest weights.")
        components = ExpGestComponents(denoiser=denoiser, mean=mean, std=std, wavlm=load_wavlm(layout.wavlm, device))
        if mode == "audio_only":
            from models.encoders.asr import load_asr
            from models.encoders.bert import load_bert
            from models.expgest.checkpoint import load_emotion_classifier
            from models.expgest.semantic import SemanticEncoder, load_semantic_weights

            assert isinstance(config, AudioOnlyConfig)  # found == mode above
            tokenizer, bert = load_bert(_present(layout.bert, "BERT"))
            semantic = SemanticEncoder.from_pretrained_bert(bert, tokenizer, latent_dim=config.latent_dim)
            load_semantic_weights(_present(layout.joint_sem_ges, "joint semantic encoder"), semantic)
            components.semantic = semantic.to(device).eval().requires_grad_(False)
            components.asr = load_asr(_present(layout.asr, "speech recogniser"), device)
            components.emotion_classifier = load_emotion_classifier(
                _present(layout.emo_classifier, "emotion classifier"), None, device)
        else:
            from models.encoders.clip_text import load_clip_text

            components.clip = load_clip_text(_present(layout.clip, "CLIP text encoder"), device, layout.clip_tokenizer)
        _CACHE[key] = components
        return components


class ExpGestEngine:
    """The ExpGest engine (``backend.engines.base.Engine``).

    Args:
        models_dir: weights folder (``models/README.md``); everything loads here (cached per process).
        mode: ``audio_only`` | ``audio_phrase`` (alias ``audio_pharse``) | ``audio_text``.
        device: ``auto`` (CUDA → MPS → CPU) | ``cpu`` | ``cuda`` | ``mps``.
        precision: ``auto`` | ``fp32`` | ``bf16``: bf16 runs bf16 copies of the denoiser and emotion classifier
            (``models/expgest/precision.py``); sampling, guidance combination and the classifier-guidance
            correction stay float32. ``auto`` picks bf16 only where the device computes it natively and
            ``AUTO_ALLOWS_BF16`` is set, and always fp32 with ``behaviour="faithful"``; ``precision`` holds the
            choice and ``precision_reason`` why.
        behaviour: ``default`` (fixed stitching/decoding) | ``faithful`` (the reference demo's numerics).
        components: already-loaded components (tests, benchmarks); skips ``models_dir``.
    """

    name = "expgest"

    def __init__(self, models_dir: str | Path | None, mode: str = "audio_only", device: str = "auto",
                 precision: str = "fp32", behaviour: str = "default", *,
                 components: ExpGestComponents | None = None) -> None:
        mode = canonical_mode(mode)
        if mode not in MODES:
            raise EngineError(f"Unknown ExpGest mode {mode!r}; use {one_of(MODES)}.")
        if precision not in PRECISIONS:
            raise EngineError(f"Unknown precision {precision!r}; use {one_of(PRECISIONS)}.")
        if behaviour not in BEHAVIOURS:
            raise EngineError(f"Unknown behaviour {behaviour!r}; use {one_of(BEHAVIOURS)}.")
        if components is None and models_dir is None:
            raise WeightsError("The expgest engine needs the folder of the released weights (--models DIR).")
        self.models_dir = models_dir
        self.mode: Mode = mode  # type: ignore[assignment]
        self.device = resolve_device(device)
        self.behaviour: Behaviour = behaviour  # type: ignore[assignment]
        from models.expgest.precision import native_bf16, resolve_precision

        self.precision, self.precision_reason = resolve_precision(precision, self.device,
                                                                  faithful=behaviour == "faithful")
        self._emulated_bf16 = self.precision == "bf16" and not native_bf16(self.device)
        _LOG.info("expgest precision: %s", self.precision_reason)
        self.warnings: list[str] = []
        if components is None:
            assert models_dir is not None
            components = load_components(models_dir, self.mode, self.device)
        self._components = components
        self._batcher: WindowBatcher | None = None
        self._graph_networks: dict[tuple[str, int, bool], Any] = {}
        self._group_networks: tuple[Any, Any | None, str] | None = None   # set on generate_batch's clip clones
        self.compile_reason = ""  # why the last request's denoiser was (not) compiled (compiled.py)
        self.clip_warnings: list[list[str]] = []
        self.forward_batch_sizes: list[int] = []  # clips per forward of each round of the last generate_batch

    def auto_clips_per_forward(self) -> int:
        """How many clips ``clips_per_forward="auto"`` samples together on this engine's device.

        8 on a CUDA GPU, where one step at batch 8 costs little more than at batch 1 (not measured here: no GPU
        was lent), and on a CPU with at least 2 PyTorch threads: measured on 2 cores (``bench/bench_batching.py``,
        docs/speed.md; emotion gradients beside the denoiser) 2 clips per forward gain 1.06-1.20x, 4 gain
        1.16-1.40x and 8 gain 1.49x over clips one after another. With 1 thread (a process given one core, such
        as a Ray worker) 1: not measured there.
        """
        if self.device.type == "cuda" or (self.device.type == "cpu" and torch.get_num_threads() >= 2):
            return 8
        return 1

    def _networks(self, calls: int = 0, batched: bool = False) -> tuple[Any, Any | None]:
        """(denoiser at this precision, classifier).

        The denoiser and the classifier's guidance gradient are compiled when ``calls`` (this request's denoiser
        calls) repay it (``compiled.py``), else the denoiser is CUDA-graph wrapped on CUDA unless
        EXPGEST_CUDA_GRAPHS=0.
        """
        from .compiled import compiled_classifier, compiled_network, should_compile, should_compile_guidance
        from .cuda_graphs import wrap_for_device

        if self._group_networks is not None:   # a clip of generate_batch: its group's choice
            network, classifier, self.compile_reason = self._group_networks
            return network, classifier
        network, classifier = self.components.networks(self.precision)
        if calls:
            use, self.compile_reason = should_compile(calls, self.device.type, self.behaviour, batched)
            if use:
                cache = self.components.compiled
                if classifier is not None and not batched and should_compile_guidance(calls):
                    # compiled on its first gradient, i.e. only if the request guides
                    classifier = compiled_classifier(cache, ("classifier", self.precision, id(classifier)),
                                                     classifier)
                name = (self.precision, id(network), "any batch") if batched else (self.precision, id(network))
                return compiled_network(cache, name, network, dynamic_batch=batched), classifier
        enabled = os.environ.get("EXPGEST_CUDA_GRAPHS", "1") != "0"
        key = (self.precision, id(network), enabled)
        if key not in self._graph_networks:
            self._graph_networks = {key: wrap_for_device(network, self.device, enabled)}
        return self._graph_networks[key], classifier

    def _plan(self, samples: int) -> stitching.WindowPlan:
        """The windows a clip of ``samples`` audio samples is sampled in."""
        return stitching.plan_windows(stitching.frames_for_samples(samples, self.geometry), self.geometry,
                                      self.behaviour)

    @property
    def components(self) -> ExpGestComponents:
        """The loaded networks and encoders."""
        return self._components

    @property
    def geometry(self) -> stitching.WindowGeometry:
        """Window sizes of the mode."""
        return stitching.AUDIO_ONLY_GEOMETRY if self.mode == "audio_only" else stitching.HYBRID_GEOMETRY

    @property
    def layout(self) -> StreamLayout:
        """Body/hand stream split of the mode's features."""
        return AUDIO_ONLY_LAYOUT if self.mode == "audio_only" else HYBRID_LAYOUT

    # --- public API --------------------------------------------------------------------------------------------

    def generate(self, audio: np.ndarray, request: GenerationRequest, progress: ProgressFn,
                 cancel: CancelToken) -> Motion:
        """Generate SMPL-X motion for ``audio`` (see ``Engine.generate``).

        Returns:
            A Motion at its true 20 fps with ``frames_for_samples(len(audio))`` frames.
        """
        return self.to_motion(self.generate_features(audio, request, progress, cancel))

    def generate_batch(self, clips: Sequence[tuple[np.ndarray, GenerationRequest]], progress: Sequence[ProgressFn],
                       cancel: CancelToken, clips_per_forward: int = DEFAULT_CLIPS_PER_FORWARD
                       ) -> list[Motion | BaseException]:
        """Generate several clips, window k of up to ``clips_per_forward`` clips in one batched forward.

        Each clip gets its own conditions, seeded noise, emotion guidance and stitching, so it gets the motion
        ``generate`` gives it alone (up to float rounding of the batched matmuls). Clips are grouped in request
        order, ``clips_per_forward`` at a time, among clips with the same steps and guidance scale.

        Args:
            clips: (audio (N,) float32 16 kHz, request) per clip.
            progress: one progress callback per clip.
            cancel: stops the whole batch between denoising steps.
            clips_per_forward: the most clips sampled together (1: one after another).

        Returns:
            Per clip, its Motion or the exception that stopped it (a failure in a shared forward fails its group).
            ``self.clip_warnings`` holds each clip's warnings; ``self.warnings`` all of them, prefixed with the
            clip's number.
        """
        if clips_per_forward < 1:
            raise EngineError(f"clips_per_forward must be at least 1, got {clips_per_forward}.")
        results: list[Motion | BaseException] = [EngineError("not run")] * len(clips)
        groups: dict[tuple[int, float], list[int]] = {}
        for index, (_, request) in enumerate(clips):
            groups.setdefault((request.steps, request.guidance), []).append(index)
        warnings: list[str] = []
        self.clip_warnings = [[] for _ in clips]
        self.forward_batch_sizes = []
        for members in groups.values():
            for start in range(0, len(members), clips_per_forward):
                chunk = members[start:start + clips_per_forward]
                for index, outcome, clip_warnings in self._generate_group(clips, progress, cancel, chunk):
                    results[index] = outcome
                    self.clip_warnings[index] = clip_warnings
                    warnings += [f"clip {index + 1}: {w}" for w in clip_warnings]
        self.warnings = warnings
        return results

    def _generate_group(self, clips: Sequence[tuple[np.ndarray, GenerationRequest]], progress: Sequence[ProgressFn],
                        cancel: CancelToken, members: list[int]
                        ) -> list[tuple[int, Motion | BaseException, list[str]]]:
        """Run the clips ``members`` concurrently, their windows meeting in one ``WindowBatcher``."""
        steps = clips[members[0]][1].steps
        scheduler = DDIMCosineScheduler()
        scheduler.set_timesteps(steps)
        calls = sum(self._plan(np.asarray(clips[index][0]).size).n_windows for index in members) \
            * len(scheduler.timesteps)
        network, classifier = self._networks(calls, batched=len(members) > 1)
        shared = (network, classifier, self.compile_reason)
        batcher = WindowBatcher(len(members), lambda jobs: run_window_jobs(jobs, network, classifier, scheduler))
        batcher.batch_sizes = self.forward_batch_sizes  # every round of every group, in order
        outcomes: dict[int, tuple[Motion | BaseException, list[str]]] = {}

        def run(index: int) -> None:
            clone = copy.copy(self)
            clone._batcher = batcher
            clone._group_networks = shared
            clone.warnings = []
            try:
                audio, request = clips[index]
                outcomes[index] = (clone.generate(audio, request, progress[index], cancel), clone.warnings)
            except BaseException as error:  # noqa: BLE001 - reported per clip
                outcomes[index] = (error, clone.warnings)
            finally:
                batcher.leave()

        if len(members) == 1:
            run(members[0])
        else:
            threads = [threading.Thread(target=run, args=(index,), name=f"expgest-clip-{index}") for index in members]
            for thread in threads:
                thread.start()
            try:
                for thread in threads:
                    thread.join()
            except KeyboardInterrupt:   # stop every clip at its next step, then let Ctrl-C through
                cancel.cancel()
                for thread in threads:
                    thread.join()
                raise
        return [(index, *outcomes[index]) for index in members]

    @translated()  # the encoders raise models.errors.AudioError (too short, not mono)
    def generate_features(self, audio: np.ndarray, request: GenerationRequest, progress: ProgressFn,
                          cancel: CancelToken) -> GeneratedFeatures:
        """Run the diffusion model over the whole clip and return de-normalised, smoothed features.

        Args:
            audio: (N,) float32 mono 16 kHz.
            request: the validated request (steps, guidance, seed, emotion, text, speaker).
            progress: progress callback.
            cancel: polled before every denoising step.

        Returns:
            The features (decode with ``to_motion`` or ``decode_bvh``).
        """
        self.warnings = []
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            raise EngineError("The audio is empty; choose a range with sound in it.")
        components = self.components
        plan = self._plan(audio.size)
        window_waves = stitching.window_audio(audio, plan)
        scheduler = DDIMCosineScheduler()
        scheduler.set_timesteps(request.steps)
        generator = torch.Generator(device="cpu").manual_seed(int(request.seed))
        steps_total = plan.n_windows * len(scheduler.timesteps)
        network, classifier = self._networks(calls=steps_total)
        report_every = max(1, len(scheduler.timesteps) // 50)
        info: dict[str, Any] = {"windows": plan.n_windows, "steps": len(scheduler.timesteps),
                                "precision": self.precision, "precision_reason": self.precision_reason,
                                "compile": self.compile_reason}
        if self._emulated_bf16:
            self.warnings.append(f"This {self.device.type.upper()} has no native bf16, so bf16 runs through emulated "
                                 "kernels (measured 6 to 7 times slower than fp32 on such a CPU); use --precision "
                                 "auto or fp32 here.")
        if request.steps < scheduler.num_train_timesteps:
            self.warnings.append(f"{request.steps} of the model's 1000 denoising steps (a respaced schedule, for "
                                 "speed); gestures can come out smaller and stiffer than with all 1000 steps.")
        ignored = {"audio_only": ("phrase", "motion")}.get(self.mode, ("transcript",))
        unused = sorted({a.kind for a in request.text if a.kind in ignored})
        if unused:
            self.warnings.append(f"Text annotations of kind {', '.join(unused)} are not used by the {self.mode} "
                                 "mode (audio_only reads transcripts; audio_phrase and audio_text read phrase and "
                                 "motion texts); choose the mode that matches your annotations.")
        if request.speaker != 0 and self.mode != "audio_phrase":
            self.warnings.append(f"The {self.mode} mode has no speaker control, so speaker {request.speaker} was "
                                 "ignored; use the audio_phrase mode to choose a speaker.")
        conditions = (self._audio_only_conditions(request, plan, window_waves, progress, info)
                      if self.mode == "audio_only" else self._hybrid_conditions(request, plan, info))

        def sample_fn(index: int, seed: np.ndarray | None) -> np.ndarray:
            stage = f"denoising window {index + 1}/{plan.n_windows}"
            progress(stage, index * len(scheduler.timesteps) / steps_total, "")
            cancel.check()
            with torch.no_grad():
                wavlm = components.wavlm.extract(window_waves[index])
                audio_feat = _resample(wavlm, self.geometry.n_poses).to(self.device)
            y, emotion = conditions(index)
            y["audio"] = audio_feat
            y.update(self._seed_streams(seed))
            job = WindowJob(y=y, x_T=(), guidance=request.guidance, check_cancel=cancel.check)
            if emotion is not None:
                target, strength = emotion
                loaded = components.emotion_classifier
                assert loaded is not None  # conditions() guides only when a classifier is loaded
                latent = loaded.config.latent_dim

                def eps_provider(timestep: int, part: str) -> torch.Tensor:
                    return torch.randn(1, latent, generator=generator).to(self.device)

                job.emotion = (target, strength, eps_provider)
            shapes = [(1, len(self.layout.body), 1, self.geometry.n_poses),
                      (1, len(self.layout.hand), 1, self.geometry.n_poses)]
            job.x_T = tuple(torch.randn(shape, generator=generator).to(self.device) for shape in shapes)

            def on_step(step: int, num_steps: int, pred_x0: Any) -> None:
                if step % report_every == 0:
                    progress(stage, (index * num_steps + step) / steps_total, f"step {step + 1}/{num_steps}")

            job.on_step = on_step
            compiling = _compiling(network, classifier if emotion is not None else None)
            if compiling:
                progress(stage, index * len(scheduler.timesteps) / steps_total,
                         f"compiling {compiling}, once per session")
            if self._batcher is not None:   # several clips per forward (generate_batch)
                out = self._batcher.submit(job)
            else:
                out = run_window_jobs([job], network, classifier, scheduler)[0]
            return self.layout.merge(*out)

        align = self._alignment(info.get("window_texts", []))
        normalised = stitching.sample_windows(sample_fn, plan, self.behaviour, align)
        progress("decoding", 1.0, "")
        features = stitching.fit_length(decode.denormalise(normalised, components.mean, components.std),
                                        plan.n_frames)
        features = decode.smooth(features, self.behaviour)
        return GeneratedFeatures(features=features, mode=self.mode, behaviour=self.behaviour, info=info)

    def to_motion(self, generated: GeneratedFeatures) -> Motion:
        """Decode features to an SMPL-X Motion at 20 fps.

        audio_only: ``default`` retargets BEAT onto SMPL-X (rest-pose aware, translation re-based so the SMPL-X
        pelvis sits where BEAT's hips are); ``faithful`` is the reference's raw copy. Hybrids: rot6d → axis-angle.
        """
        if generated.mode == "audio_only":
            poses, trans = decode.beat_feats_to_smplx(generated.features, generated.behaviour)
            if generated.behaviour == "default":
                trans = trans - REST_JOINTS[0]
        else:
            poses, trans = decode.hybrid_feats_to_smplx(generated.features, generated.behaviour)
        return Motion(poses=poses.reshape(len(poses), -1).astype(np.float32), trans=trans.astype(np.float32),
                      fps=float(generated.fps))

    def decode_bvh(self, generated: GeneratedFeatures, path: str | Path) -> Path:
        """Write audio_only features as a BVH on the BEAT 75-joint skeleton at 20 fps (the reference's output).

        Raises:
            EngineError: for hybrid modes (their features are SMPL-X; write an .npz instead).
        """
        if generated.mode != "audio_only":
            raise EngineError(f"BVH output exists only for the audio_only mode (BEAT skeleton); the {generated.mode} "
                              "mode produces SMPL-X motion, so choose an .npz output.")
        return decode.write_beat_bvh(path, decode.decode_beat(generated.features, generated.behaviour),
                                     1.0 / generated.fps)

    # --- conditions per window --------------------------------------------------------------------------------

    def _seed_streams(self, seed: np.ndarray | None) -> dict[str, torch.Tensor]:
        n_seed = self.geometry.n_seed
        if seed is None or self.mode != "audio_only":
            # Hybrids: the reference multiplies the seed by 0 (its models were only ever sampled that way).
            return {"seed_body": torch.zeros(1, len(self.layout.body), 1, n_seed, device=self.device),
                    "seed_hand": torch.zeros(1, len(self.layout.hand), 1, n_seed, device=self.device)}
        body, hand = self.layout.split(seed)
        return {"seed_body": body.to(self.device), "seed_hand": hand.to(self.device)}

    def _audio_only_conditions(self, request: GenerationRequest, plan: stitching.WindowPlan,
                               window_waves: list[np.ndarray], progress: ProgressFn, info: dict[str, Any]
                               ) -> Callable[[int], tuple[dict[str, torch.Tensor], tuple[int, float] | None]]:
        components = self.components
        emotions = _window_emotions(request, plan)
        transcripts = _window_transcripts(request, plan)
        info["emotions"] = [EMOTIONS[label] for label, _ in emotions]
        latents: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def semantic(index: int) -> tuple[torch.Tensor, torch.Tensor]:
            # faithful: window 0's transcript conditions every window (the reference's bug, spec §8.5).
            source = 0 if self.behaviour == "faithful" else index
            if source not in latents:
                text = transcripts[source]
                if text is None:
                    progress("recognising speech", None, f"window {source + 1}/{plan.n_windows}")
                    if components.asr is None:
                        raise EngineError("No speech recogniser is loaded; give the transcript as text.")
                    text = components.asr.transcribe(window_waves[source])
                info.setdefault("transcripts", {})[source] = text
                if components.semantic is None:
                    raise EngineError("The audio_only mode needs the semantic encoder, and none is loaded.")
                with torch.no_grad():
                    body, hand = components.semantic([text])
                latents[source] = (body.float().to(self.device), hand.float().to(self.device))
            return latents[source]

        def conditions(index: int) -> tuple[dict[str, torch.Tensor], tuple[int, float] | None]:
            label, strength = emotions[index]
            emotion_onehot = torch.zeros(1, len(EMOTIONS), device=self.device)
            emotion_onehot[0, label] = 1.0
            body, hand = semantic(index)
            # "style" is the released network's name for its emotion input (not the speaker).
            y = {"style": emotion_onehot, "text_latent_body": body, "text_latent_hand": hand}
            guided = components.emotion_classifier is not None and label != 0 and strength > 0
            return y, ((label, strength) if guided else None)

        return conditions

    def _hybrid_conditions(self, request: GenerationRequest, plan: stitching.WindowPlan, info: dict[str, Any]
                           ) -> Callable[[int], tuple[dict[str, torch.Tensor], None]]:
        components = self.components
        if any(e.label != "neutral" for e in request.emotion):
            # The emotion classifier only fits the audio_only streams (451/690 channels, spec §5.4).
            self.warnings.append(f"The {self.mode} mode has no emotion control, so the emotion setting was ignored; "
                                 "use the audio_only mode for emotional gestures.")
        spans = [(a.start_s, a.end_s, a.text) for a in request.text if a.kind in ("phrase", "motion")]
        texts = stitching.assign_by_time(spans, plan)
        info["window_texts"] = ["" if t is None else t for t in texts]
        distinct = sorted({t for t in texts if t is not None})
        features: dict[str, torch.Tensor] = {}
        if distinct:
            if components.clip is None:
                raise EngineError(f"The {self.mode} mode needs the CLIP text encoder, and none is loaded.")
            with torch.no_grad():
                encoded = components.clip.encode(list(distinct)).float().to(self.device)
            for text, cut in zip(distinct, getattr(components.clip, "last_truncated", ()), strict=False):
                if cut:
                    self.warnings.append(f"The text '{text[:60]}…' is longer than the 77 tokens CLIP reads, so only "
                                         "its beginning was used; shorten it to one short sentence.")
            features = {text: encoded[i:i + 1] for i, text in enumerate(distinct)}
        speaker = torch.zeros(1, N_SPEAKERS, device=self.device)
        speaker[0, request.speaker] = 1.0

        def conditions(index: int) -> tuple[dict[str, torch.Tensor], None]:
            text = texts[index]
            # No annotation: the null CLIP input (zeros), the same input the unconditional branch sees.
            clip_feat = features[text] if text is not None else torch.zeros(1, CLIP_DIM, device=self.device)
            return {"clip_text_feat": clip_feat, "speaker_id": speaker}, None

        return conditions

    def _alignment(self, window_texts: list[str]) -> stitching.AlignFn:
        if self.mode == "audio_only":
            return stitching.align_audio_only_root
        if self.behaviour == "faithful":
            return stitching.make_hybrid_align_faithful(window_texts)
        return stitching.align_hybrid_root


def _compiling(network: Any, classifier: Any | None) -> str:
    """What the next window compiles on its first call ("" if nothing), from the wrappers of ``compiled.py``."""
    what = []
    if getattr(network, "compiling", False):
        what.append("the denoiser (about 20 s)")
    if getattr(classifier, "compiling", False):
        what.append("the emotion gradient (about 60 s)")
    return " and ".join(what)


def _resample(features: torch.Tensor, frames: int) -> torch.Tensor:
    from models.expgest.features import resample_features

    return resample_features(features.float().reshape(1, features.shape[-2], features.shape[-1]), frames)


def _window_emotions(request: GenerationRequest, plan: stitching.WindowPlan) -> list[tuple[int, float]]:
    """Emotion (index, strength) per window: timed spans by most overlap, untimed spans cover the whole clip."""
    whole = [e for e in request.emotion if e.start_s is None and e.end_s is None]
    default = whole[0] if whole else request.emotion[0]
    spans = [(e.start_s or 0.0, e.end_s if e.end_s is not None else float("inf"), e)
             for e in request.emotion if e.start_s is not None or e.end_s is not None]
    chosen = stitching.assign_by_time(spans, plan)
    return [(EMOTIONS.index((span or default).label), (span or default).strength) for span in chosen]


def _window_transcripts(request: GenerationRequest, plan: stitching.WindowPlan) -> list[str | None]:
    """User transcripts per window (``kind: transcript`` annotations overlapping it, in time order), else None."""
    spans = [a for a in request.text if a.kind == "transcript"]
    if not spans:
        return [None] * plan.n_windows
    out: list[str | None] = []
    for index in range(plan.n_windows):
        start, end = plan.window_seconds(index)
        words = [a.text for a in spans if min(end, a.end_s) - max(start, a.start_s) > 0]
        out.append(" ".join(words))
    return out
