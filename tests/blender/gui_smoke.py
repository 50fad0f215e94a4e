"""On-screen smoke test in a real Blender GUI (Debian's blender 3.4.1 under Xvfb): the modal path end to end.

    xvfb-run -a -s "-screen 0 1600x1000x24" blender --factory-startup --python tests/blender/gui_smoke.py -- \
        --zip dist/expgest-0.1.0-legacy.zip --speech speech.wav --out artifacts/gui

Installs the legacy add-on zip, builds a scene (an SMPL-X character, a speech strip), opens the sidebar's
Gestures tab, invokes Generate Gestures the way the button does (``INVOKE_DEFAULT`` in the 3D View: invoke +
modal timer), lets it run to the end while a 10 ms ``bpy.app.timers`` heartbeat measures the longest
main-thread stall, takes screenshots of the panel (before, during, after) and of the posed character, and
writes ``result.json``. Blender's exit status does not report failures, so the pytest wrapper reads that file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback

import bpy

argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
parser = argparse.ArgumentParser()
parser.add_argument("--zip", required=True)
parser.add_argument("--speech", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--timeout", type=float, default=120.0)
args = parser.parse_args(argv)
os.makedirs(args.out, exist_ok=True)
RESULT = os.path.join(args.out, "result.json")
result: dict = {"ok": False, "stage": "setup", "blender": bpy.app.version_string}


def write_result() -> None:
    with open(RESULT, "w") as handle:
        json.dump(result, handle, indent=2)


def fail(message: str) -> None:
    result["error"] = message
    write_result()
    bpy.ops.wm.quit_blender()


try:
    bpy.context.preferences.view.show_splash = False
    bpy.context.preferences.view.smooth_view = 0
    bpy.ops.preferences.addon_install(filepath=os.path.abspath(args.zip), overwrite=True)
    bpy.ops.preferences.addon_enable(module="expgest")
    ops_module = sys.modules["expgest.operators"]
    scene = bpy.context.scene
    for obj in list(scene.objects):
        bpy.data.objects.remove(obj)
    scene.render.fps = 30
    assert bpy.ops.expgest.add_character(name="SMPLX", with_mesh=True) == {"FINISHED"}
    character = bpy.data.objects["SMPLX"]
    editor = scene.sequence_editor_create()
    sound = editor.sequences.new_sound("speech", os.path.abspath(args.speech), channel=1, frame_start=1)
    scene.frame_end = sound.frame_final_end
    result["strip"] = {"start": sound.frame_final_start, "end": sound.frame_final_end}
except Exception:
    result["error"] = traceback.format_exc()
    write_result()
    raise

window = bpy.context.window_manager.windows[0]
area = next(a for a in window.screen.areas if a.type == "VIEW_3D")
space = area.spaces.active
space.show_region_ui = True
space.region_3d.view_perspective = "PERSP"
ui_region = next(r for r in area.regions if r.type == "UI")
view_region = next(r for r in area.regions if r.type == "WINDOW")
if hasattr(ui_region, "active_panel_category"):  # 4.2+
    ui_region.active_panel_category = "Gestures"

state = {"step": 0, "t0": 0.0, "last_beat": None, "max_gap": 0.0, "beats": 0, "invoked": False}


def heartbeat():
    """Runs every 10 ms on the main thread; a long gap between runs is a stall."""
    now = time.perf_counter()
    if state["last_beat"] is not None and state.get("baseline"):
        state["baseline_gap"] = max(state.get("baseline_gap", 0.0), now - state["last_beat"])
    if state["last_beat"] is not None and state["invoked"]:
        state["max_gap"] = max(state["max_gap"], now - state["last_beat"])
        state.setdefault("gaps", []).append(round(now - state["last_beat"], 3))
        state["beats"] += 1
    state["last_beat"] = now
    return 0.01


def screenshot(name: str) -> str:
    """A full-window screenshot; the heartbeat gap it causes is the test's, not the add-on's: not counted."""
    path = os.path.join(args.out, name)
    with bpy.context.temp_override(window=window, area=area):
        bpy.ops.screen.screenshot(filepath=path)
    state["last_beat"] = None
    return path


def click_gestures_tab() -> None:
    """3.4 has no ``Region.active_panel_category``: click the tab (factory layout at 1600x1000, blender.md)."""
    subprocess.run(["xdotool", "mousemove", "1307", "248", "click", "1"], check=False)


def tick():
    try:
        step = state["step"]
        state["step"] += 1
        if step == 0:
            # Widen the sidebar so the panel's texts fit: drag its left edge.
            edge_x = area.x + area.width - ui_region.width
            subprocess.run(["xdotool", "mousemove", str(edge_x + 1), "500", "mousedown", "1", "mousemove",
                            str(edge_x - 200), "500", "mouseup", "1"], check=False)
            return 1.0
        if step == 1:
            if not hasattr(ui_region, "active_panel_category"):
                click_gestures_tab()
            state["baseline"] = True
            return 2.0  # two seconds of idle heartbeats: the machine's own baseline stall
        if step == 2:
            state["baseline"] = False
            result["baseline_longest_stall_s"] = state.get("baseline_gap", 0.0)
            result["shots"] = [screenshot("panel_before.png")]
            result["stage"] = "invoke"
            with bpy.context.temp_override(window=window, area=area):
                bpy.ops.ed.undo_push(message="Scene ready")
            with bpy.context.temp_override(window=window, area=area, region=view_region):
                outcome = bpy.ops.expgest.generate("INVOKE_DEFAULT")
            result["invoke"] = sorted(outcome)
            if outcome != {"RUNNING_MODAL"}:
                fail(f"invoke returned {outcome}: {scene.expgest.last_report}")
                return None
            state["invoked"] = True
            state["t0"] = time.perf_counter()
            return 0.3
        active = ops_module.active_run()
        if active is not None:
            state["operator_tick_s"] = active.longest_tick_s
            if "panel_running.png" not in " ".join(result["shots"]):
                result["shots"].append(screenshot("panel_running.png"))
            if time.perf_counter() - state["t0"] > args.timeout:
                fail("the generation did not finish in time")
                return None
            return 0.2
        if state.get("finished_at") is not None:
            return finish_and_quit()
        # The modal operator has finished.
        state["finished_at"] = time.perf_counter()
        state["invoked"] = False
        result["seconds"] = time.perf_counter() - state["t0"]
        result["longest_stall_s"] = state["max_gap"]
        result["heartbeats"] = state["beats"]
        result["longest_gaps_s"] = sorted(state.get("gaps", []))[-5:]
        # A run faster than this poll ends unseen: the add-on keeps the last run's longest tick.
        result["longest_operator_tick_s"] = max(state.get("operator_tick_s") or 0.0,
                                                sys.modules["expgest.runs"].last_longest_tick_s)
        result["report"] = scene.expgest.last_report
        adt = character.animation_data
        strips = [s for t in adt.nla_tracks for s in t.strips] if adt else []
        result["nla"] = [{"name": s.name, "start": s.frame_start, "end": s.frame_end} for s in strips]
        if strips:
            curves = strips[0].action.fcurves
            result["fcurves"] = len(curves)
            result["keys"] = len(curves[0].keyframe_points)
            middle = int((sound.frame_final_start + sound.frame_final_end) / 2)
            scene.frame_set(middle)
            wrist = character.pose.bones["left_wrist"]
            result["wrist_moved_m"] = (wrist.head - character.data.bones["left_wrist"].head_local).length
        if strips:  # reduced keys (the default): fewer than one a frame, the first and last frame keyed
            points = curves[0].keyframe_points
            result["key_range"] = [points[0].co[0], points[-1].co[0]]
            result["keys_total"] = sum(len(c.keyframe_points) for c in curves)
        state["keys_ok"] = (bool(strips) and 2 <= result.get("keys", 0) < sound.frame_final_duration
                            and result["key_range"] == [sound.frame_final_start, sound.frame_final_end - 1])
        body = bpy.data.objects.get(character.get("expgest_body", ""))
        for obj in scene.objects:
            obj.select_set(obj == (body or character))
        with bpy.context.temp_override(window=window, area=area, region=view_region):
            bpy.ops.view3d.view_selected()
        context_scene = scene.expgest
        context_scene.show_layering = context_scene.show_curves = True  # the foldouts open in the screenshot
        return 1.0  # let the viewport redraw the posed frame before the viewport screenshot
    except Exception:
        fail(traceback.format_exc())
        return None


def finish_and_quit():
    """The posed character, then the take's curves in the Graph Editor (NLA tweak mode shows a strip's Action)."""
    try:
        result["shots"].append(screenshot("panel_after.png"))  # the panels have settled to their new size
        result["shots"].append(screenshot("viewport_posed.png"))
        adt = character.animation_data
        track = adt.nla_tracks[0]
        track.strips[0].select = True
        adt.nla_tracks.active = track
        adt.use_tweak_mode = True
        area.type = "GRAPH_EDITOR"
        graph = area.spaces.active
        graph.dopesheet.filter_text = "right_shoulder"
        graph.use_normalization = True  # each curve's range fills the view: the Bezier keys are visible
        graph.dopesheet.show_only_selected = False
        bpy.app.timers.register(graph_shot, first_interval=0.5)
        return None
    except Exception:
        fail(traceback.format_exc())
        return None


def graph_shot():
    global view_region
    try:
        graph_region = next(r for r in area.regions if r.type == "WINDOW")
        with bpy.context.temp_override(window=window, area=area, region=graph_region):
            bpy.ops.graph.select_all(action="DESELECT")
            bpy.ops.graph.view_all()
        if not state.get("graph_framed"):
            state["graph_framed"] = True
            return 0.5  # let it redraw framed
        result["shots"].append(screenshot("graph_editor_reduced_take.png"))
        area.type = "VIEW_3D"
        view_region = next(r for r in area.regions if r.type == "WINDOW")
        character.animation_data.use_tweak_mode = False
        bpy.app.timers.register(undo_then_escape, first_interval=0.3)
        return None
    except Exception:
        fail(traceback.format_exc())
        return None


def take_count() -> int:
    obj = bpy.data.objects.get("SMPLX")  # undo replaces the Python objects: look it up again
    return len(obj.animation_data.nla_tracks) if obj is not None and obj.animation_data else 0


def undo_then_escape():
    try:
        # Deleting a take from the take list is one undo step: undo brings the take back.
        with bpy.context.temp_override(window=window, area=area, region=ui_region):
            deleted = bpy.ops.expgest.take_delete("EXEC_DEFAULT", True)  # True: an undo step, as a click
        result["take_delete"] = {"result": sorted(deleted), "tracks_after_delete": take_count(),
                                 "action_after_delete": "SMPLX_speech_take1" in bpy.data.actions}
        with bpy.context.temp_override(window=window, area=area):
            bpy.ops.ed.undo()
        result["take_delete"].update(tracks_after_undo=take_count(),
                                     action_after_undo="SMPLX_speech_take1" in bpy.data.actions)
        # One generation is one undo step: undo removes the take and nothing else.
        with bpy.context.temp_override(window=window, area=area):
            bpy.ops.ed.undo()
        after_undo = bpy.data.objects.get("SMPLX")
        result["undo"] = {
            "character_kept": after_undo is not None,
            "tracks_left": len(after_undo.animation_data.nla_tracks) if after_undo and after_undo.animation_data else 0,
            "take_actions_left": sum("_take" in a.name for a in bpy.data.actions),
        }
        result["ok"] = state["keys_ok"]
        # Esc cancels a running generation and leaves the scene as it was.
        result["stage"] = "escape"
        with bpy.context.temp_override(window=window, area=area, region=view_region):
            outcome = bpy.ops.expgest.generate("INVOKE_DEFAULT")
        result["escape"] = {"invoke": sorted(outcome)}
        x = area.x + area.width // 3
        y = window.height - (area.y + area.height // 2)
        subprocess.run(["xdotool", "mousemove", str(x), str(y), "key", "Escape"], check=False)
        state["escape_t0"] = time.perf_counter()
        bpy.app.timers.register(wait_for_escape, first_interval=0.2)
        return None
    except Exception:
        fail(traceback.format_exc())
        return None


def wait_for_escape():
    try:
        if ops_module.active_run() is not None:
            if time.perf_counter() - state["escape_t0"] > 60:
                fail("Esc did not stop the generation")
                return None
            return 0.2
        obj = bpy.data.objects.get("SMPLX")
        result["escape"].update(
            report=bpy.context.scene.expgest.last_report,  # undo replaced the scene's Python object
            tracks=len(obj.animation_data.nla_tracks) if obj.animation_data else 0,
            seconds=time.perf_counter() - state["escape_t0"])
        result["stage"] = "done"
        write_result()
        bpy.ops.wm.quit_blender()
        return None
    except Exception:
        fail(traceback.format_exc())
        return None


bpy.app.timers.register(heartbeat, first_interval=0.5, persistent=True)
bpy.app.timers.register(tick, first_interval=1.5, persistent=True)
write_result()
