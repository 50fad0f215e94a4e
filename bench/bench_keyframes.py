"""Add-on speed: keyframe writing and click-to-keys overhead, measured in real Blender (bpy), one run.

    EXPGEST_BACKEND_PYTHON=.venv/backend/bin/python .venv/blender/bin/python bench/bench_keyframes.py

1. Keyframe writing: a 10 min take at 30 fps on the 55-bone SMPL-X armature (18 000 frames, 223 F-curves,
   ~4 M keys): the pure retarget passes, then the bulk F-curve writer. Target: writing <= 2 s.
2. Click-to-keys overhead, excluding model compute: ``expgest.generate``'s whole path (scene reading,
   request, backend round trip, loading the Motion, retargeting, writing the take) on 60 s of speech, minus
   the backend's own audio/load/generate stage timings. Target: <= 1 s per minute of audio. Measured with a
   cold backend (first click: process start included) and a warm one (second click).

Prints each number with its target and the ratio (measured / target; <= 1 meets the target).
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="bl_bench_")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import bpy  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODULE = "bl_ext.user_default.expgest"


def install() -> None:
    out = Path(tempfile.mkdtemp(prefix="expgest_dist_"))
    subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--output-dir", str(out)], check=True,
                   capture_output=True)
    (zip_path,) = out.glob("expgest-*.zip")
    assert bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                    enable_on_install=True) == {"FINISHED"}


def report(name: str, measured: float, target: float, cpu: float | None = None) -> None:
    cpu_text = f"   (CPU {cpu:.3f} s)" if cpu is not None else ""
    print(f"{name:58s} {measured:8.3f} s   target {target:.3f} s   ratio {measured / target:5.2f}{cpu_text}")


def bench_keyframes() -> None:
    retarget = importlib.import_module(MODULE + ".retarget")
    keyframes = importlib.import_module(MODULE + ".keyframes")
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    bpy.ops.expgest.add_character(name="SMPLX", with_mesh=False)
    obj = bpy.data.objects["SMPLX"]
    frames = 10 * 60 * 30
    rng = np.random.default_rng(0)
    # Smooth random motion: low-passed noise per channel.
    noise = rng.normal(size=(frames // 30 + 2, 165)) * 0.3
    t = np.arange(frames) / 30.0
    poses = np.stack([np.interp(t, np.arange(len(noise)), noise[:, c]) for c in range(165)], 1)
    trans = np.stack([np.interp(t, np.arange(len(noise)), noise[:, c] * 0.1) for c in range(3)], 1)
    start, cpu = time.perf_counter(), time.process_time()
    rest = keyframes.read_armature_rest(obj)
    tracks = retarget.retarget_motion(poses, trans, rest)
    retarget_s, retarget_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    keyframes.apply_take(obj, tracks, strip_name="bench", frame_start=1)
    write_s, write_cpu = time.perf_counter() - start, time.process_time() - cpu
    report("retarget 10 min x 55 bones @30 fps (numpy)", retarget_s, 2.0, retarget_cpu)
    report("write keyframes 10 min x 55 bones @30 fps (223 curves)", write_s, 2.0, write_cpu)


def make_minute_of_speech(folder: Path) -> Path:
    """About 60 s of espeak-ng speech (several sentences joined with sox)."""
    text = ("Good morning everyone, and thank you for coming. Today I want to talk about the project we started "
            "last spring, what went well, what went wrong, and what we are going to do next. ")
    part = folder / "part.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(part), text], check=True)
    out = folder / "minute.wav"
    subprocess.run(["sox", *[str(part)] * 6, str(out), "trim", "0", "60"], check=True)
    return out


def bench_click_to_keys() -> None:
    ops = importlib.import_module(MODULE + ".operators")
    folder = Path(tempfile.mkdtemp(prefix="expgest_bench_"))
    speech = make_minute_of_speech(folder)
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    scene.render.fps = 30
    bpy.ops.expgest.add_character(name="SMPLX", with_mesh=False)
    editor = scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    sound = strips.new_sound("minute", str(speech), channel=1, frame_start=1)
    minutes = sound.frame_final_duration / 30 / 60
    for label in ("cold backend (first click)", "warm backend (second click)"):
        start = time.perf_counter()
        active = ops.start_run(bpy.context, [bpy.data.objects["SMPLX"]])
        active.run.run_blocking(poll_interval=0.005)
        (outcome,) = active.run.outcomes
        assert outcome.error is None, outcome.error
        compute = sum(outcome.result.get("timings", {}).get(k, 0.0) for k in ("audio", "load", "generate"))
        assert ops.finish_run(bpy.context, lambda *a: None) == {"FINISHED"}
        total = time.perf_counter() - start
        print(f"  {label}: total {total:.2f} s, backend audio+load+generate {compute:.2f} s")
        report(f"click-to-keys overhead per min of audio, {label}", (total - compute) / minutes, 1.0)
    ops.shutdown_backend()
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if not os.environ.get("EXPGEST_BACKEND_PYTHON"):
        candidate = ROOT / ".venv" / "backend" / "bin" / "python"
        os.environ["EXPGEST_BACKEND_PYTHON"] = str(candidate if candidate.is_file()
                                                   else ROOT.parent / "venvs" / "backend" / "bin" / "python")
    install()
    print(f"Blender {bpy.app.version_string}, numpy {np.__version__}")
    bench_keyframes()
    bench_click_to_keys()
