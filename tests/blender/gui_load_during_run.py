"""On-screen check (Debian's blender 3.4.1 under Xvfb): File > New while Generate Gestures runs modally.

    xvfb-run -a blender --factory-startup --python tests/blender/gui_load_during_run.py -- ZIP SPEECH RESULT.json

Invokes the operator the way the button does, loads the startup file while the backend works, and records
whether the add-on let go of the run (a new generation may start) in ``RESULT.json``.
"""

from __future__ import annotations

import json
import sys
import traceback

import bpy

zip_path, speech, result_path = sys.argv[sys.argv.index("--") + 1:]
result: dict = {}


def finish() -> None:
    with open(result_path, "w") as handle:
        json.dump(result, handle)
    bpy.ops.wm.quit_blender()


bpy.context.preferences.view.show_splash = False
bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
bpy.ops.preferences.addon_enable(module="expgest")
operators = sys.modules["expgest.operators"]
scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
bpy.ops.expgest.add_character(name="SMPLX", with_mesh=False)
scene.sequence_editor_create().sequences.new_sound("speech", speech, channel=1, frame_start=1)
state = {"step": 0}


def tick():
    try:
        step = state["step"]
        state["step"] += 1
        window = bpy.context.window_manager.windows[0]
        area = next(a for a in window.screen.areas if a.type == "VIEW_3D")
        region = next(r for r in area.regions if r.type == "WINDOW")
        if step == 0:
            with bpy.context.temp_override(window=window, area=area, region=region):
                result["invoke"] = sorted(bpy.ops.expgest.generate("INVOKE_DEFAULT"))
            return 1.0
        if step == 1:
            result["running_before_load"] = operators.active_run() is not None
            with bpy.context.temp_override(window=window):
                bpy.ops.wm.read_homefile()
            return 0.5
        if operators.active_run() is not None and step < 20:
            return 0.5
        result["running_after_load"] = operators.active_run() is not None
        # The new file has no character, so Generate is disabled, but not because of the dropped run.
        result["generate_poll"] = "running" not in operators.why_generate_cannot_run(bpy.context)
        finish()
    except Exception:
        result["error"] = traceback.format_exc()
        finish()
    return None


bpy.app.timers.register(tick, first_interval=1.0, persistent=True)
