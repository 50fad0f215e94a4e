"""``python -m backend demo``: the bundled speech (or yours) → an animated SMPL-X character in Blender.

Runs exactly what a user does: builds the add-on zip, installs it into a throw-away Blender profile,
adds a sound strip and an SMPL-X character with the wooden mannequin body, clicks Generate Gestures
(the add-on starts this interpreter as its backend), saves the ``.blend`` and renders a preview.
Blender runs as a separate process (``bpy`` in its own environment, as Blender runs its own Python in
production); its interpreter comes from ``--blender-python``, ``$EXPGEST_BLENDER_PYTHON`` or
``.venv/blender/bin/python``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import ExpGestError

ROOT = Path(__file__).resolve().parents[2]
DEMO_AUDIO = ROOT / "assets" / "demo_speech.wav"
# Lines Blender prints when it renders without a display: harmless, but they read like failures.
_BLENDER_NOISE = ("EGL Error",)


def find_blender_python(explicit: str | None) -> Path:
    """The interpreter with ``bpy`` installed.

    Raises:
        ExpGestError: none was found, with the command that installs one.
    """
    candidates = [explicit, os.environ.get("EXPGEST_BLENDER_PYTHON"),
                  str(ROOT / ".venv" / "blender" / "bin" / "python")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise ExpGestError("No Python with Blender's bpy module was found. Run `bash scripts/setup.sh` (it creates "
                       ".venv/blender with bpy==5.0.1) or pass --blender-python.")


def _run(args: argparse.Namespace) -> int:
    from ..audio import load_audio

    out_dir = Path(args.out).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    audio = Path(args.audio).expanduser().resolve()
    clip = load_audio(str(audio), max_duration_s=600.0)  # fail early, with the audio module's clear messages
    blender_python = find_blender_python(args.blender_python)

    # The audio travels with the .blend (relative path), so the file can be moved with its folder.
    audio_copy = out_dir / audio.name
    if audio_copy != audio:
        shutil.copyfile(audio, audio_copy)

    env = dict(os.environ)
    env["EXPGEST_BACKEND_PYTHON"] = sys.executable
    env.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory(prefix="expgest_demo_") as work:
        print(f"[demo] building the add-on ({blender_python})", file=sys.stderr)
        built = subprocess.run([str(blender_python), str(ROOT / "build_addon.py"), "--output-dir", work],
                               cwd=ROOT, env=env, capture_output=True, text=True)
        if built.returncode != 0:
            raise ExpGestError(f"Building the add-on failed:\n{built.stderr.strip()[-2000:]}")
        addon_zip = built.stdout.strip().splitlines()[-1]
        env["BLENDER_USER_RESOURCES"] = str(Path(work) / "blender_user")
        command = [str(blender_python), str(ROOT / "scripts" / "demo_scene.py"), "--addon", addon_zip,
                   "--audio", str(audio_copy), "--out", str(out_dir), "--emotion", args.emotion,
                   "--seed", str(args.seed), "--fps", str(args.fps), "--preview-step", str(args.preview_step)]
        if args.no_preview:
            command.append("--no-preview")
        print(f"[demo] {clip.duration_s:.1f} s of speech → Blender scene", file=sys.stderr)
        with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as scene:
            assert scene.stderr is not None and scene.stdout is not None
            for line in scene.stderr:  # Blender's messages, live, less the headless-EGL noise of its renderer
                if not line.startswith(_BLENDER_NOISE):
                    sys.stderr.write(line)
            stdout = scene.stdout.read()
    if scene.returncode != 0:
        raise ExpGestError("The Blender part of the demo failed (its messages are above).")
    summary = json.loads(stdout.strip().splitlines()[-1])
    print(f"[demo] wrote {summary['blend']}", file=sys.stderr)
    if summary.get("preview"):
        print(f"[demo] preview {summary['preview']}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


def register(subparsers) -> None:
    """Add the ``demo`` sub-command."""
    parser = subparsers.add_parser("demo", help="bundled speech → animated SMPL-X character (.blend + preview)",
                                   description="What scripts/demo.sh runs: the add-on in Blender (bpy) animates an "
                                               "SMPL-X character from speech with the procedural engine, saves "
                                               "OUT/demo.blend and renders OUT/preview.mp4.")
    parser.add_argument("--audio", default=str(DEMO_AUDIO), help="speech to animate (default: the bundled clip)")
    parser.add_argument("--out", default=str(ROOT / "out" / "demo"), help="output folder (default out/demo)")
    parser.add_argument("--emotion", default="happiness", help="emotion of the gestures (default happiness)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--fps", type=int, default=30, help="scene frame rate (default 30)")
    parser.add_argument("--preview-step", type=int, default=2, help="render every n-th frame (default 2)")
    parser.add_argument("--no-preview", action="store_true", help="skip the rendered preview")
    parser.add_argument("--blender-python", help="Python with bpy (default .venv/blender/bin/python)")
    parser.set_defaults(func=_run)
