"""One generation, start to finish: audio → engine → Motion at the requested frame rate → file.

The CLI (in-process) and the stdio server both call ``run_generation``. Engines are cached in an
``EngineCache`` so a long-lived server loads each model once.

Steps:
1. read the requested audio range (``backend.audio.load_audio``), 16 kHz mono;
2. check the timed annotations against the clip;
3. get the engine from the cache (constructing it loads its weights);
4. generate at the engine's own frame rate;
5. resample to ``request.fps`` with exactly ``request.frame_count()`` frames (the one rule,
   ``vocabulary.frame_count``, on the requested range; slerp);
6. write the result atomically (temporary file in the target folder, then rename).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .engines.base import CancelToken, Engine, ProgressFn, no_progress
from .errors import EngineError, ExpGestError, OutputError, RequestError
from .request import GenerationRequest, TextAnnotation


@dataclass
class GenerationResult:
    """What a finished generation returns (also the JSON ``result`` of the protocol's ``generate``).

    Attributes:
        output: absolute path of the written file.
        frames: number of frames written.
        fps: their frame rate.
        duration_s: duration of the audio range, seconds.
        engine: engine name.
        warnings: full sentences for the user (silence, clipped annotations …).
        timings: seconds spent per stage.
        precision: the arithmetic the engine ran at and why (``--precision auto`` resolves it), "" when the
            engine has no choice (procedural).
    """

    output: str
    frames: int
    fps: float
    duration_s: float
    engine: str
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    precision: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def engine_key(request: GenerationRequest) -> tuple:
    if request.engine == "procedural":
        return ("procedural",)
    models = str(Path(request.models).expanduser().resolve()) if request.models else None
    return (request.engine, request.mode, models, request.device, request.precision, request.behaviour)


def _precision_note(engine: Engine) -> str:
    """``"fp32 (auto: …)"`` for engines with a precision choice, else ""."""
    chosen = getattr(engine, "precision", None)
    reason = getattr(engine, "precision_reason", "")
    return f"{chosen} ({reason})" if chosen else ""


def create_engine(request: GenerationRequest) -> Engine:
    """Construct (and load) the engine a request asks for.

    Raises:
        WeightsError, DeviceError: from the engine's loading.
        EngineError: the engine's dependencies (torch) are not installed.
    """
    if request.engine == "procedural":
        from .engines.procedural import ProceduralEngine

        return ProceduralEngine()
    try:
        from .engines.expgest import ExpGestEngine
    except ImportError as error:  # torch or transformers missing in this interpreter
        raise EngineError(f"The expgest engine needs PyTorch and transformers ({error}). Install them with "
                          "`pip install torch transformers safetensors`, or use the procedural engine.") from None
    return ExpGestEngine(models_dir=request.models, mode=request.mode, device=request.device,
                         precision=request.precision, behaviour=request.behaviour)


class EngineCache:
    """Loaded engines, keyed by everything that changes what is loaded; ``loads`` counts constructions."""

    def __init__(self) -> None:
        self._engines: dict[tuple, Engine] = {}
        self.loads = 0

    def get(self, request: GenerationRequest) -> Engine:
        """The cached engine for ``request``, constructing it on first use."""
        key = engine_key(request)
        engine = self._engines.get(key)
        if engine is None:
            engine = create_engine(request)
            self._engines[key] = engine
            self.loads += 1
        return engine

    def clear(self) -> None:
        """Drop every loaded engine."""
        self._engines.clear()


def _quote(text: str, limit: int = 40) -> str:
    """``text`` shortened for a message: whole words up to ``limit`` characters, then an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if not text[limit].isspace():  # do not end inside a word
        cut = cut.rsplit(" ", 1)[0] or cut
    return cut.rstrip(" ,;:") + "…"


def check_annotations(annotations: tuple[TextAnnotation, ...], duration_s: float) -> tuple[
        tuple[TextAnnotation, ...], list[str]]:
    """Clip timed annotations to the audio and report what changed.

    Annotations are in seconds from the start of the requested audio range.

    Returns:
        The usable annotations (sorted, clipped to [0, duration]) and warnings for the user.

    Raises:
        RequestError: an annotation starts at or after the end of the audio.
    """
    kept: list[TextAnnotation] = []
    warnings: list[str] = []
    for i, annotation in enumerate(annotations):
        if annotation.start_s >= duration_s:
            raise RequestError(f"text[{i}].start_s", f"{annotation.start_s:g} s is at or after the end of the "
                                                     f"audio ({duration_s:.2f} s); move or remove the annotation.")
        if annotation.end_s > duration_s + 1e-6:
            warnings.append(f"Annotation '{_quote(annotation.text)}' ends at {annotation.end_s:g} s, after the audio "
                            f"({duration_s:.2f} s); it was shortened to the end of the audio.")
            annotation = replace(annotation, end_s=duration_s)
        kept.append(annotation)
    for previous, current in zip(kept, kept[1:], strict=False):
        if current.start_s < previous.end_s and current.kind != "transcript" and previous.kind != "transcript":
            warnings.append(f"Annotations '{_quote(previous.text)}' and '{_quote(current.text)}' overlap between "
                            f"{current.start_s:g} s and {min(previous.end_s, current.end_s):g} s; where they "
                            "overlap, the one covering more of each window is used.")
    return tuple(kept), warnings


def check_output_folder(output: str | os.PathLike[str]) -> None:
    """Fail fast, before any work, when the result could not be written.

    Creates and removes a probe file in the output folder: permission bits alone say nothing when the
    backend runs as root or the folder is on a read-only mount.

    Raises:
        OutputError: the folder cannot be created or written, or the output exists and is read-only.
    """
    folder = Path(output).expanduser().resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".expgest-probe-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(f"Cannot write into the output folder {folder} ({error.strerror or error}). "
                          "Choose a folder you can write to.", data={"folder": str(folder)}) from None
    from .fileio import check_replaceable

    check_replaceable(Path(output).expanduser(), what="output file")


def write_motion(motion, path: Path) -> None:
    """Write ``motion`` as ``.npz`` or SMPL-X ``.bvh`` (by suffix), atomically.

    Raises:
        OutputError: the disk is full, the folder is not writable, or another OS error.
    """
    if path.suffix.lower() == ".bvh":
        from .motion.bvh import export_bvh

        export_bvh(motion, path)
    else:
        from .motion.motion import save_npz

        save_npz(motion, path)


def run_generation(request: GenerationRequest, *, progress: ProgressFn = no_progress,
                   cancel: CancelToken | None = None, cache: EngineCache | None = None) -> GenerationResult:
    """Run one generation and write its result file.

    Args:
        request: the validated request.
        progress: called with (stage, done in [0, 1], message) from this thread.
        cancel: polled between units of work; a cancelled run raises ``CancelledError`` and writes nothing.
        cache: engine cache to reuse loaded models (a fresh one when None).

    Returns:
        The result summary; the file is at ``result.output``.

    Raises:
        ExpGestError: every user-facing failure (audio, weights, request, output, cancel).
    """
    cancel = cancel or CancelToken()
    cancel.check()  # before the heavy imports and the audio: a cancel sent with the request stops it now
    from .audio import load_audio
    from .motion.resample import resample_motion

    cache = cache or EngineCache()
    timings: dict[str, float] = {}
    output = Path(request.output).expanduser().resolve()
    check_output_folder(output)

    start = time.perf_counter()
    progress("reading audio", 0.0, os.path.basename(request.audio.path))
    clip = load_audio(request.audio.path, start_s=request.audio.start_s, end_s=request.audio.end_s,
                      max_duration_s=request.max_duration_s, cancel=cancel.check)
    warnings = list(clip.warnings)
    if request.engine == "procedural" and request.device not in ("auto", "cpu"):
        warnings.append(f"The procedural engine always runs on the CPU; device '{request.device}' was ignored.")
    annotations, annotation_warnings = check_annotations(request.text, clip.duration_s)
    warnings += annotation_warnings
    if annotations != request.text:
        request = replace(request, text=annotations)
    timings["audio"] = time.perf_counter() - start
    cancel.check()

    start = time.perf_counter()
    progress("loading models", 0.02, request.engine)
    engine = cache.get(request)
    timings["load"] = time.perf_counter() - start
    cancel.check()

    def engine_progress(stage: str, done: float | None = None, message: str = "") -> None:
        stage = "motion generated" if stage == "done" else stage  # resampling and writing still follow
        progress(stage, None if done is None else 0.05 + 0.9 * max(0.0, min(1.0, done)), message)

    start = time.perf_counter()
    try:
        motion = engine.generate(clip.samples, request, engine_progress, cancel)
    except ExpGestError:
        raise
    except MemoryError:
        raise EngineError("Out of memory while generating. Try a shorter audio range, the CPU device, "
                          "or close other programs.") from None
    timings["generate"] = time.perf_counter() - start
    warnings += list(engine.warnings)
    cancel.check()

    start = time.perf_counter()
    progress("resampling", 0.96, f"{motion.fps:g} → {request.fps:g} fps")
    frames = request.frame_count(clip.duration_s)
    motion = resample_motion(motion, request.fps, num_frames=frames)
    timings["resample"] = time.perf_counter() - start
    cancel.check()

    start = time.perf_counter()
    progress("writing", 0.98, str(output))
    write_motion(motion, output)
    timings["write"] = time.perf_counter() - start
    progress("done", 1.0, "")
    return GenerationResult(output=str(output), frames=motion.num_frames, fps=motion.fps,
                            duration_s=clip.duration_s, engine=request.engine, warnings=warnings, timings=timings,
                            precision=_precision_note(engine))


def run_generation_batch(requests: Sequence[GenerationRequest], *, progress: Sequence[ProgressFn],
                         cancel: CancelToken | None = None, cache: EngineCache | None = None,
                         clips_per_forward: int = 4) -> list[GenerationResult | ExpGestError]:
    """Several requests for the same engine settings, window k of up to ``clips_per_forward`` clips per forward.

    Each request is read, generated (``ExpGestEngine.generate_batch``: its own seed, conditions, guidance and
    stitching), resampled and written as ``run_generation`` would; engines without ``generate_batch`` (procedural)
    run the requests one after another.

    Args:
        requests: validated requests that share engine, mode, models, device, precision and behaviour.
        progress: one callback per request.
        cancel: stops the whole batch between denoising steps.
        cache: loaded engines.
        clips_per_forward: the most clips sampled together.

    Returns:
        Per request, its result or the user-facing error that stopped it.
    """
    cancel = cancel or CancelToken()
    cache = cache or EngineCache()
    if len({engine_key(r) for r in requests}) > 1:
        raise ValueError("run_generation_batch needs requests with the same engine settings.")
    engine: Any = cache.get(requests[0])
    if not hasattr(engine, "generate_batch"):
        out: list[GenerationResult | ExpGestError] = []
        for request, report in zip(requests, progress, strict=True):
            try:
                out.append(run_generation(request, progress=report, cancel=cancel, cache=cache))
            except ExpGestError as error:
                out.append(error)
        return out
    from .audio import load_audio
    from .motion.resample import num_frames_for, resample_motion

    results: list[GenerationResult | ExpGestError | None] = [None] * len(requests)
    ready: list[tuple[int, GenerationRequest, Any, list[str]]] = []
    for index, request in enumerate(requests):
        try:
            check_output_folder(Path(request.output).expanduser().resolve())
            clip = load_audio(request.audio.path, start_s=request.audio.start_s, end_s=request.audio.end_s,
                              max_duration_s=request.max_duration_s, cancel=cancel.check)
            annotations, warnings = check_annotations(request.text, clip.duration_s)
            ready.append((index, replace(request, text=annotations), clip, list(clip.warnings) + warnings))
        except ExpGestError as error:
            results[index] = error
            progress[index]("failed", 1.0, error.message)
    start = time.perf_counter()
    motions = engine.generate_batch([(clip.samples, request) for _, request, clip, _ in ready],
                                    [progress[index] for index, _, _, _ in ready], cancel, clips_per_forward)
    seconds = (time.perf_counter() - start) / max(len(ready), 1)
    for (index, request, clip, warnings), motion, clip_warnings in zip(ready, motions, engine.clip_warnings,
                                                                        strict=True):
        if isinstance(motion, ExpGestError):
            results[index] = motion
            continue
        if isinstance(motion, BaseException):
            raise motion
        try:
            output = Path(request.output).expanduser().resolve()
            motion = resample_motion(motion, request.fps, num_frames=num_frames_for(clip.duration_s, request.fps))
            write_motion(motion, output)
        except ExpGestError as error:
            results[index] = error
            progress[index]("failed", 1.0, error.message)
            continue
        progress[index]("done", 1.0, "")
        results[index] = GenerationResult(output=str(output), frames=motion.num_frames, fps=motion.fps,
                                          duration_s=clip.duration_s, engine=request.engine,
                                          warnings=warnings + list(clip_warnings),
                                          timings={"generate (batch share)": seconds},
                                          precision=_precision_note(engine))
    return [r if r is not None else EngineError("not run") for r in results]
