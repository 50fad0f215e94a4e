"""``python -m backend generate SPEECH -o OUT.npz|OUT.bvh``: one generation, in-process."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from ..errors import RequestError
from ..request import GenerationRequest
from ..vocabulary import (
    DEFAULT_STEPS,
    DEVICES,
    EMOTIONS,
    ENGINES,
    MODE_ALIASES,
    MODES,
    PRECISIONS,
    QUALITY_STEPS,
    TEXT_KINDS,
    canonical_mode,
)

_RANGE = re.compile(r"^\s*(?P<start>\d+(?:\.\d*)?)\s*-\s*(?P<end>\d+(?:\.\d*)?)\s*:(?P<text>.*)$", re.S)


def parse_text_option(value: str, default_kind: str) -> dict:
    """Parse ``START-END:TEXT`` (seconds), where TEXT may start with ``motion:``, ``phrase:`` or ``transcript:``."""
    match = _RANGE.match(value)
    if match is None:
        raise RequestError("--text", f"{value!r} is not START-END:TEXT, "
                                     "e.g. \"8.0-14.0:a person walks back and forth\".")
    text = match["text"].strip()
    kind = default_kind
    prefix, _, rest = text.partition(":")
    if rest and prefix.strip().lower() in TEXT_KINDS:
        kind, text = prefix.strip().lower(), rest.strip()
    return {"start_s": float(match["start"]), "end_s": float(match["end"]), "text": text, "kind": kind}


def add_generation_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``generate`` and ``batch``: everything of the request except audio and output."""
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of the result (default 30)")
    parser.add_argument("--engine", choices=ENGINES, default="procedural",
                        help="procedural (default, no weights) or expgest (the diffusion model; needs --models)")
    parser.add_argument("--mode", default="audio_only", choices=[*MODES, *MODE_ALIASES],
                        help="expgest mode (default audio_only)")
    parser.add_argument("--models", help="folder of the released ExpGest weights (see models/README.md)")
    parser.add_argument("--emotion", default="neutral", help=", ".join(EMOTIONS[:-1]) + f" or {EMOTIONS[-1]}")
    parser.add_argument("--emotion-strength", type=float, default=1.0, help="0 … 2 (default 1)")
    parser.add_argument("--text", action="append", default=[], metavar="START-END:TEXT",
                        help="timed text annotation in seconds, repeatable; TEXT may start with "
                             + ", ".join(f"{kind}:" for kind in TEXT_KINDS))
    parser.add_argument("--annotations", metavar="JSON",
                        help="JSON file with a list of {start_s, end_s, text, kind}")
    parser.add_argument("--speaker", type=int, default=0,
                        help="speaker index 0-3: the gesture habits of one trained speaker (audio_phrase mode)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed (default 0); the same seed and inputs give the same motion")
    presets = ", ".join(f"{name} = {steps}" for name, steps in QUALITY_STEPS.items())
    steps = parser.add_mutually_exclusive_group()
    steps.add_argument("--steps", type=int, default=None,
                       help=f"denoising steps (expgest; default {DEFAULT_STEPS}, as in the paper)")
    steps.add_argument("--quality", choices=tuple(QUALITY_STEPS), default=None,
                       help=f"expgest quality preset, the add-on's Quality menu: {presets} steps")
    steps.add_argument("--draft", action="store_true",
                       help=f"the draft preset (--quality draft: {QUALITY_STEPS['draft']} steps), a fast preview")
    parser.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (expgest)")
    parser.add_argument("--device", default="auto", choices=DEVICES,
                        help="where expgest runs (default auto: a GPU when PyTorch sees one, else the CPU)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="expgest arithmetic (default auto: fp32 unless the device computes bf16 natively and "
                             "bf16 was measured as accurate as fp32, see docs/speed.md; --faithful is always fp32)")
    parser.add_argument("--faithful", action="store_true",
                        help="reproduce the original ExpGest numerics, defects included")
    parser.add_argument("--max-duration", type=float, default=1800.0, help="longest audio accepted, seconds")


def steps_from_args(args: argparse.Namespace) -> int:
    """Sampler steps from ``--steps``, ``--quality`` or ``--draft`` (one meaning of each preset:
    ``vocabulary.QUALITY_STEPS``); the default is ``DEFAULT_STEPS``."""
    if getattr(args, "draft", False):
        return QUALITY_STEPS["draft"]
    if getattr(args, "quality", None):
        return QUALITY_STEPS[args.quality]
    steps = getattr(args, "steps", None)
    return DEFAULT_STEPS if steps is None else steps


def request_from_args(args: argparse.Namespace, audio: str, output: str) -> GenerationRequest:
    """Build and validate a GenerationRequest from parsed CLI options."""
    default_kind = "phrase" if canonical_mode(args.mode) == "audio_phrase" else "motion"
    text = [parse_text_option(value, default_kind) for value in args.text]
    if args.annotations:
        try:
            loaded = json.loads(Path(args.annotations).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RequestError("--annotations", f"cannot read {args.annotations}: {error}") from None
        text += loaded if isinstance(loaded, list) else [loaded]
    data = {
        "audio": {"path": str(Path(audio).expanduser().resolve()), "start_s": getattr(args, "start", 0.0) or 0.0,
                  "end_s": getattr(args, "end", None)},
        "output": str(Path(output).expanduser().resolve()),
        "fps": args.fps, "engine": args.engine, "mode": args.mode,
        "emotion": {"label": args.emotion, "strength": args.emotion_strength},
        "text": text, "speaker": args.speaker, "seed": args.seed,
        "steps": steps_from_args(args), "guidance": args.guidance, "device": args.device,
        "precision": args.precision, "behaviour": "faithful" if args.faithful else "default",
        "max_duration_s": args.max_duration,
    }
    if args.models:
        data["models"] = str(Path(args.models).expanduser().resolve())
    return GenerationRequest.from_dict(data)


class StderrProgress:
    """Prints progress to stderr: one updating line on a terminal, throttled lines otherwise."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_stage: str | None = None
        self.last_time = 0.0

    def __call__(self, stage: str, done: float | None = None, message: str = "") -> None:
        now = time.monotonic()
        percent = "" if done is None else f"{100 * done:5.1f}% "
        line = f"{percent}{stage}" + (f" ({message})" if message else "")
        if self.tty:
            self.stream.write("\r\033[K" + line)
            if stage == "done":
                self.stream.write("\n")
        elif stage != self.last_stage or now - self.last_time > 2.0:
            self.stream.write(line + "\n")
            self.last_time = now
        self.last_stage = stage
        self.stream.flush()


def _run(args: argparse.Namespace) -> int:
    from ..pipeline import run_generation

    request = request_from_args(args, args.speech, args.output)
    result = run_generation(request, progress=StderrProgress())
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    summary = result.to_dict()
    print(json.dumps(summary) if args.json else
          f"wrote {result.output}: {result.frames} frames at {result.fps:g} fps ({result.duration_s:.2f} s, "
          f"{result.engine} engine{', ' + result.precision if result.precision else ''})")
    return 0


def register(subparsers) -> None:
    """Add the ``generate`` sub-command."""
    parser = subparsers.add_parser("generate", help="speech in, SMPL-X gestures out (.npz or .bvh)",
                                   description="Generate co-speech gestures for one audio file.")
    parser.add_argument("speech", help="audio file (wav, flac, ogg, mp3 …)")
    parser.add_argument("-o", "--output", required=True, help="result: OUT.npz (SMPL-X motion) or OUT.bvh")
    parser.add_argument("--start", type=float, default=0.0, help="start of the range to use, seconds")
    parser.add_argument("--end", type=float, default=None, help="end of the range to use, seconds")
    parser.add_argument("--json", action="store_true", help="print the result summary as JSON")
    add_generation_options(parser)
    parser.set_defaults(func=_run)
