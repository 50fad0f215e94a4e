"""Run by test_blender_alone.py in a fresh Blender process: a user with Blender alone.

Fresh user profile (BLENDER_USER_RESOURCES from the test), no EXPGEST_BACKEND_PYTHON, nothing configured:
install the platform zip through Blender's own extension installer, add a sound strip and an SMPL-X
character, click Generate Gestures. Writes what happened as JSON to argv[3].

    python blender_alone_run.py ZIP SPEECH.wav OUT.json
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time

import bpy

zip_path, speech, out_path = sys.argv[1:4]
assert "EXPGEST_BACKEND_PYTHON" not in os.environ
info: dict = {}
start = time.perf_counter()
info["install"] = sorted(bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                                  enable_on_install=True))
info["seconds_install"] = time.perf_counter() - start
module = "bl_ext.user_default.expgest"
preferences = importlib.import_module(module + ".preferences")
jobs = importlib.import_module(module + ".jobs")
resolved = preferences.resolve(bpy.context)
info.update(python=resolved.python, source=resolved.python_source, own_python=sys.executable,
            site_packages=jobs.extension_site_packages())
info["bundled"] = sorted(name for folder in info["site_packages"] for name in os.listdir(folder))

# The same interpreter without the extension's wheels cannot run the backend: nothing leaked in from the
# test environment.
without = subprocess.run([resolved.python, "-c", jobs._CHECK_SCRIPT], cwd=jobs.bundle_root(),
                         env=jobs.backend_environment(python=""), capture_output=True, text=True)
info["without_wheels"] = [without.returncode, (without.stderr.strip().splitlines() or [""])[-1]]
info["probe"] = jobs.probe_interpreter(resolved.python)
info["check_backend"] = sorted(bpy.ops.expgest.check_backend())
info["check_report"] = bpy.context.scene.expgest.last_report

scene = bpy.context.scene
editor = scene.sequence_editor or scene.sequence_editor_create()
strips = editor.strips if hasattr(editor, "strips") else editor.sequences
strips.new_sound("speech", speech, channel=1, frame_start=1)
info["add_character"] = sorted(bpy.ops.expgest.add_character(name="SMPLX", with_mesh=True))
meshes = [obj for obj in scene.objects if obj.type == "MESH" and any(
    modifier.type == "ARMATURE" and modifier.object is not None and modifier.object.name == "SMPLX"
    for modifier in obj.modifiers)]
info["mesh_vertices"] = len(meshes[0].data.vertices) if meshes else 0
info["generate"] = sorted(bpy.ops.expgest.generate())
info["seconds_to_keys"] = time.perf_counter() - start
armature = bpy.data.objects["SMPLX"]
keys = 0
for track in armature.animation_data.nla_tracks if armature.animation_data else ():
    for strip in track.strips:
        action = strip.action
        fcurves = action.fcurves if hasattr(action, "fcurves") and len(getattr(action, "fcurves", ())) else [
            fc for layer in getattr(action, "layers", ()) for s in layer.strips
            for bag in s.channelbags for fc in bag.fcurves]
        keys += sum(len(fc.keyframe_points) for fc in fcurves)
info["keys"] = keys
info["report"] = scene.expgest.last_report
importlib.import_module(module + ".operators").shutdown_backend()
with open(out_path, "w", encoding="utf-8") as handle:
    json.dump(info, handle, indent=1)
