"""On screen (Debian's blender 3.4.1 under Xvfb): the add-on's preferences page as a user sees it.

    xvfb-run -a -s "-screen 0 1600x1000x24" blender --factory-startup --python tests/blender/gui_preferences.py \
        -- ZIP OUT_DIR

Installs the legacy zip, turns the 3D View into the Preferences editor on the Add-ons section filtered to
this add-on, expands it (backend, engine install with sizes and licence, models folder), runs Check Models
Folder on an empty folder so its report is drawn, and takes a screenshot. Any Python error raised while
drawing is printed by Blender to stderr, which the pytest wrapper checks. Writes OUT_DIR/preferences.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback

import bpy

zip_path, out_dir = sys.argv[sys.argv.index("--") + 1:][:2]
os.makedirs(out_dir, exist_ok=True)
result: dict = {"ok": False}


def finish() -> None:
    with open(os.path.join(out_dir, "preferences.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    bpy.ops.wm.quit_blender()


try:
    bpy.context.preferences.view.show_splash = False
    bpy.ops.preferences.addon_install(filepath=os.path.abspath(zip_path), overwrite=True)
    bpy.ops.preferences.addon_enable(module="expgest")
    prefs = bpy.context.preferences.addons["expgest"].preferences
    prefs.models_dir = tempfile.mkdtemp(prefix="empty-models-")
    result["check_models"] = sorted(bpy.ops.expgest.check_models())
    bpy.context.preferences.active_section = "ADDONS"
    window = bpy.context.window_manager.windows[0]
    area = max(window.screen.areas, key=lambda a: a.width * a.height)
    area.type = "PREFERENCES"
    bpy.context.window_manager.addon_search = "ExpGest"
    bpy.ops.preferences.addon_expand(module="expgest")
except Exception:
    result["error"] = traceback.format_exc()
    finish()


def shoot():
    try:
        path = os.path.join(out_dir, "preferences.png")
        with bpy.context.temp_override(window=window, area=area):
            bpy.ops.screen.screenshot(filepath=path)
        result.update(ok=True, shot=path)
    except Exception:
        result["error"] = traceback.format_exc()
    finish()


bpy.app.timers.register(shoot, first_interval=2.0)
