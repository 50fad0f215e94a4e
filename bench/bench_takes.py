"""Takes: what key reduction keeps and costs, measured in real Blender (bpy) on a procedural take, one run.

    EXPGEST_BACKEND_PYTHON=.venv/backend/bin/python .venv/blender/bin/python bench/bench_takes.py

On 60 s of espeak-ng speech (one seed, the SMPL-X character, full body), the same motion is written twice:
one linear key per frame, and reduced to Bezier keys within 0.5 degrees / 1 mm. Prints the key counts and
their ratio, the largest rotation and location difference the reduction leaves (measured on the curves
Blender evaluates, at every frame), and the time ``finish_run`` takes to write each (retarget + writing;
the reduction is the difference). Target: reduction costs <= 1 s per minute of audio.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="bl_bench_")  # before bpy starts
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bpy  # noqa: E402
import numpy as np  # noqa: E402
from bench_keyframes import MODULE, install, make_minute_of_speech  # noqa: E402


def curves_of(action):
    if bpy.app.version >= (4, 4, 0):
        return list(action.layers[0].strips[0].channelbag(action.slots[0]).fcurves)
    return list(action.fcurves)


def main() -> None:
    import shutil

    if not os.environ.get("EXPGEST_BACKEND_PYTHON"):
        os.environ["EXPGEST_BACKEND_PYTHON"] = str(Path(__file__).resolve().parents[1] / ".venv" / "backend" /
                                                   "bin" / "python")
    install()
    ops = importlib.import_module(MODULE + ".operators")
    takes = importlib.import_module(MODULE + ".takes")
    channels = importlib.import_module(MODULE + ".channels")
    folder = Path(tempfile.mkdtemp(prefix="expgest_bench_"))
    speech = make_minute_of_speech(folder)
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    scene.render.fps = 30
    bpy.ops.expgest.add_character(name="SMPLX", with_mesh=False)
    obj = bpy.data.objects["SMPLX"]
    editor = scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    sound = strips.new_sound("minute", str(speech), channel=1, frame_start=1)
    minutes = sound.frame_final_duration / 30 / 60
    obj.expgest.lock_seed = True
    obj.expgest.seed = 1
    write_s = {}
    for reduce in (False, True):
        obj.expgest.reduce_keys = reduce
        active = ops.start_run(bpy.context, [obj])
        active.run.run_blocking(poll_interval=0.005)
        start = time.perf_counter()
        assert ops.finish_run(bpy.context, lambda *a: None) == {"FINISHED"}, ops.REPORT.text
        write_s[reduce] = time.perf_counter() - start
        print(f"  {'reduced' if reduce else 'dense  '}: {ops.REPORT.text}")
    dense, sparse = takes.character_takes(obj)
    frames = np.arange(sound.frame_final_start, sound.frame_final_end)
    dense_curves = {(c.data_path, c.array_index): c for c in curves_of(dense.action)}
    sparse_curves = {(c.data_path, c.array_index): c for c in curves_of(sparse.action)}
    dense_keys = sum(len(c.keyframe_points) for c in dense_curves.values())
    sparse_keys = sum(len(c.keyframe_points) for c in sparse_curves.values())
    worst_angle, worst_location = 0.0, 0.0
    for bone in obj.pose.bones:
        path = f'pose.bones["{bone.name}"].rotation_quaternion'
        if (path, 0) in dense_curves:
            a = np.stack([[dense_curves[(path, i)].evaluate(f) for i in range(4)] for f in frames])
            b = np.stack([[sparse_curves[(path, i)].evaluate(f) for i in range(4)] for f in frames])
            worst_angle = max(worst_angle, float(np.degrees(channels.quaternion_angle(a, b)).max()))
    path = 'pose.bones["pelvis"].location'
    a = np.stack([[dense_curves[(path, i)].evaluate(f) for i in range(3)] for f in frames])
    b = np.stack([[sparse_curves[(path, i)].evaluate(f) for i in range(3)] for f in frames])
    worst_location = float(np.linalg.norm(a - b, axis=-1).max())
    print(f"Blender {bpy.app.version_string}; {len(frames)} frames ({minutes * 60:.1f} s), "
          f"{len(dense_curves)} curves")
    print(f"keys: dense {dense_keys:,}, reduced {sparse_keys:,} ({sparse_keys / dense_keys:.1%}, "
          f"{dense_keys / sparse_keys:.1f}x fewer; {sparse_keys / len(dense_curves) / minutes / 60:.1f} keys per "
          "curve per second)")
    print(f"largest difference at any frame, as Blender evaluates: {worst_angle:.3f} deg (tolerance 0.5), "
          f"{worst_location * 1000:.3f} mm (tolerance 1)")
    extra = (write_s[True] - write_s[False]) / minutes
    print(f"write: dense {write_s[False]:.2f} s, reduced {write_s[True]:.2f} s; reduction costs {extra:.2f} s per "
          f"minute of audio (target 1.00, ratio {extra / 1.0:.2f})")
    ops.shutdown_backend()
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
