"""On-screen take list (Debian's blender 3.4.1 under Xvfb): three takes, one layered, drawn in the sidebar.

    xvfb-run -a -s "-screen 0 1600x1000x24" blender --factory-startup --python tests/blender/gui_takes.py -- \
        ZIP SPEECH OUT_DIR

Makes three takes of one line (the third an Upper Body / Combine layer), plays take 1 (Make Active), opens
the Layering fold-out, and screenshots the Gestures tab (``OUT_DIR/takes_panel.png``); records what the take
list holds in ``OUT_DIR/takes_result.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback

import bpy

zip_path, speech, out_dir = sys.argv[sys.argv.index("--") + 1:]
os.makedirs(out_dir, exist_ok=True)
result: dict = {}


def finish() -> None:
    with open(os.path.join(out_dir, "takes_result.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    bpy.ops.wm.quit_blender()


bpy.context.preferences.view.show_splash = False
bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
bpy.ops.preferences.addon_enable(module="expgest")
takes = sys.modules["expgest.takes"]
scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
scene.render.fps = 30
bpy.ops.expgest.add_character(name="Anna", with_mesh=False)
character = bpy.data.objects["Anna"]
scene.sequence_editor_create().sequences.new_sound("line_01", speech, channel=1, frame_start=1)
window = bpy.context.window_manager.windows[0]
area = next(a for a in window.screen.areas if a.type == "VIEW_3D")
area.spaces.active.show_region_ui = True
state = {"step": 0}


def tick():
    try:
        step = state["step"]
        state["step"] += 1
        if step == 0:  # three takes, the last a gesture layer over the others (scripts run execute())
            for layer in (False, False, True):
                if layer:
                    character.expgest.scope, character.expgest.blend = "UPPER", "COMBINE"
                    character.expgest.influence = 0.8
                assert bpy.ops.expgest.generate() == {"FINISHED"}, scene.expgest.last_report
            character.expgest.active_take = takes.character_takes(character)[0].index
            assert bpy.ops.expgest.take_activate() == {"FINISHED"}
            scene.expgest.show_layering = True
            subprocess.run(["xdotool", "mousemove", "1307", "248", "click", "1"], check=False)  # the Gestures tab
            return 1.5
        with bpy.context.temp_override(window=window, area=area):
            bpy.ops.screen.screenshot(filepath=os.path.join(out_dir, "takes_panel.png"))
        result["takes"] = [{"name": t.track.name, "muted": t.track.mute, "scope": t.settings["scope"],
                            "seed": t.settings["seed"]} for t in takes.character_takes(character)]
        result["report"] = scene.expgest.last_report
        result["ok"] = True
    except Exception:
        result["error"] = traceback.format_exc()
    finish()
    return None


bpy.app.timers.register(tick, first_interval=1.0, persistent=True)
