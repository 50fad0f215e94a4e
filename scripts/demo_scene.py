"""The Blender half of ``python -m backend demo`` (run with the bpy interpreter, not the backend's).

Installs the built add-on zip, makes the scene a user would make (a sound strip, an SMPL-X character with
the mannequin body), runs the add-on's own operators (``expgest.add_character``, ``expgest.generate``),
saves the ``.blend`` and renders a preview. Prints one JSON summary line on stdout; everything else goes
to stderr. Exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def log(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addon", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--emotion", default="happiness")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--preview-step", type=int, default=2)
    parser.add_argument("--no-preview", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="expgest_blender_"))

    import bpy  # after BLENDER_USER_RESOURCES: keeps the user's own Blender profile untouched

    out_dir = Path(args.out)
    result = bpy.ops.extensions.package_install_files(filepath=args.addon, repo="user_default",
                                                      enable_on_install=True)
    if result != {"FINISHED"}:
        raise SystemExit(f"installing {args.addon} failed: {result}")
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = args.fps, 1.0
    editor = scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    strip = strips.new_sound("speech", args.audio, channel=1, frame_start=1)
    log(f"sound strip '{strip.name}': frames {strip.frame_final_start}–{strip.frame_final_end}")

    started = time.perf_counter()
    if bpy.ops.expgest.add_character(name="Speaker", with_mesh=True) != {"FINISHED"}:
        raise SystemExit("Add SMPL-X Character failed")
    character = scene.expgest.character
    character.expgest.emotion = args.emotion
    character.expgest.seed = args.seed
    character.expgest.lock_seed = True  # the seed given, not a new one per take
    log(f"character '{character.name}' added in {time.perf_counter() - started:.1f} s; generating gestures")
    started = time.perf_counter()
    if bpy.ops.expgest.generate() != {"FINISHED"}:
        raise SystemExit(f"Generate Gestures failed: {scene.expgest.last_report}")
    log(f"generated in {time.perf_counter() - started:.1f} s: {scene.expgest.last_report}")

    scene.frame_start = int(strip.frame_final_start)
    scene.frame_end = int(strip.frame_final_end) - 1
    blend = out_dir / "demo.blend"
    bpy.context.preferences.filepaths.save_version = 0  # no demo.blend1 backup beside the result
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.file.make_paths_relative()
    bpy.ops.wm.save_mainfile()
    summary = {"blend": str(blend), "frames": scene.frame_end - scene.frame_start + 1, "fps": args.fps,
               "character": character.name, "preview": None}
    if not args.no_preview:
        import preview  # scripts/preview.py, beside this script (not part of the add-on)

        started = time.perf_counter()
        rendered = preview.render_preview(bpy.context, out_dir / "preview.mp4", frame_step=args.preview_step)
        video = getattr(rendered, "video", None)
        summary["preview"] = str(video) if video else str(getattr(rendered, "frames_dir", out_dir))
        log(f"preview rendered in {time.perf_counter() - started:.1f} s")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except Exception:  # any failure must fail the demo command
        import traceback

        traceback.print_exc()
        sys.exit(1)
