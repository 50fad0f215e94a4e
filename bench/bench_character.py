"""Character build and preview render speed (run with the Blender venv; the backend venv builds the file).

    .venv/blender/bin/python bench/bench_character.py [--frames 20]

Prints, from one run: the backend's character-file build time, ``build_character_object`` time for the
24k-vertex mannequin (target: well under a few seconds), and Workbench CPU seconds per 480x480 preview
frame for each anti-aliasing setting, as ratios to the default used by ``render_preview`` (OFF).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="bl_user_bench_"))

import bpy  # noqa: E402
from mathutils import Quaternion  # noqa: E402

from blender_addon.rig import build_character_object  # noqa: E402
from scripts.preview import frame_camera  # noqa: E402


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames rendered per anti-aliasing setting")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_character_"))
    backend = os.environ.get("EXPGEST_BACKEND_PYTHON", str(ROOT / ".venv" / "backend" / "bin" / "python"))

    began = time.perf_counter()
    subprocess.run([backend, "-m", "backend", "character", "-o", str(work / "c.npz")], cwd=ROOT, check=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL)
    print(f"backend character file (process incl. start-up): {time.perf_counter() - began:.2f} s")

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    builds = []
    for _ in range(3):
        began = time.perf_counter()
        arm = build_character_object(bpy.context, character=work / "c.npz")
        builds.append(time.perf_counter() - began)
    print(f"build_character_object, 24256 vertices: best {min(builds):.3f} s of 3")

    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, args.frames
    bone = arm.pose.bones["left_shoulder"]
    for frame in range(1, args.frames + 1, 4):
        bone.rotation_quaternion = Quaternion((0.0, 0.0, 1.0), math.sin(frame / 5))
        bone.keyframe_insert("rotation_quaternion", frame=frame)
    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.resolution_x = render.resolution_y = 480
    render.resolution_percentage = 100
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "MATERIAL"
    frame_camera(bpy.context)
    per_frame = {}
    for setting in ("OFF", "FXAA", "8"):
        scene.display.render_aa = setting
        cpu, wall = _cpu(), time.perf_counter()
        for frame in range(1, args.frames + 1):
            scene.frame_set(frame)
            render.filepath = str(work / f"{setting}_{frame:04d}.png")
            bpy.ops.render.render(write_still=True)
        per_frame[setting] = ((_cpu() - cpu) / args.frames, (time.perf_counter() - wall) / args.frames)
    base = per_frame["OFF"][0]
    for setting, (cpu, wall) in per_frame.items():
        print(f"480x480 Workbench frame, AA {setting:>4}: {cpu:.3f} s CPU ({wall:.3f} s wall), "
              f"{cpu / base:.2f}x of OFF")
    print(f"10 s preview at 15 fps (150 frames, AA OFF): about {150 * per_frame['OFF'][1]:.0f} s wall here")


if __name__ == "__main__":
    main()
