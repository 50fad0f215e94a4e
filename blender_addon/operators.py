"""Operators: thin adapters between Blender and the pure parts (HOUSE_STYLE 3).

``expgest.generate`` / ``expgest.generate_all``: ``invoke()`` starts a run (``runs.start_run``) and a modal
timer advances it (the main thread never waits on the backend); ``execute()`` runs the same steps to the
end synchronously (scripts, tests, background mode). The scene is only written when the run is over and
succeeded, in ``runs.finish_run``, inside the operator, so one generation is one undo step and a crash, an
error or a cancel leaves the scene as it was. The run state and the warm backend live in ``runs.py``; the
names below re-exported from it are what the panel and scripts use.
"""

from __future__ import annotations

import time
import traceback

import bpy

from . import jobs, keyframes, preferences, retarget, runs, scene
from .backend.errors import ExpGestError, ServerNotStartedError
from .runs import (  # noqa: F401 - the add-on's and scripts' names for the run state
    REPORT,
    SKIPPED,
    abandon_run,
    active_run,
    build_character_file,
    finish_run,
    for_blender,
    new_seed,
    on_load_pre,
    set_report,
    settings_for,
    shutdown_backend,
    start_run,
)

# ---------------------------------------------------------------------------------------------------
# Choosing characters


def _smplx_armatures(context: bpy.types.Context) -> list[bpy.types.Object]:
    out = []
    for obj in context.scene.objects:
        if obj.type != "ARMATURE":
            continue
        try:
            keyframes.read_armature_rest(obj)
        except retarget.RetargetError:
            continue
        out.append(obj)
    return sorted(out, key=lambda o: o.name)


def armature_of(obj: bpy.types.Object | None) -> bpy.types.Object | None:
    """``obj`` if it is an armature, else the armature that deforms it (a character's body mesh), or None."""
    if obj is None or obj.type == "ARMATURE":
        return obj
    for modifier in getattr(obj, "modifiers", ()):
        if modifier.type == "ARMATURE" and modifier.object is not None:
            return modifier.object
    return obj.parent if obj.parent is not None and obj.parent.type == "ARMATURE" else None


def pick_character(context: bpy.types.Context, name: str = "") -> bpy.types.Object:
    """The character to animate: ``name``; else the selection (the active armature, or the armature of the
    active body mesh); else the panel's Character; else the scene's only armature.

    Raises:
        scene.SceneError: when none (or several, ambiguously) qualify.
    """
    if name:
        obj = context.scene.objects.get(name)
        if obj is None or obj.type != "ARMATURE":
            raise scene.SceneError(f"There is no armature named '{name}' in scene '{context.scene.name}'.")
        return obj
    active = armature_of(context.active_object)
    if active is not None and active.name in context.scene.objects:
        return active
    chosen = context.scene.expgest.character
    if chosen is not None and chosen.name in context.scene.objects:
        return chosen
    armatures = [o for o in context.scene.objects if o.type == "ARMATURE"]
    if len(armatures) == 1:
        return armatures[0]
    if not armatures:
        raise scene.SceneError("There is no armature in the scene; add one with Add SMPL-X Character "
                               "(Gestures panel) or import an SMPL-X body.")
    raise scene.SceneError(f"The scene has {len(armatures)} armatures; select the character to animate, or use "
                           "Generate All.")


def assigned_characters(context: bpy.types.Context) -> tuple[list[bpy.types.Object], list[str]]:
    """The characters Generate All animates (SMPL-X armatures with a Sound Strip assigned), and the names of
    the SMPL-X armatures it skips because they have none."""
    found = _smplx_armatures(context)
    return [o for o in found if o.expgest.sound_strip], [o.name for o in found if not o.expgest.sound_strip]


class _GenerateBase:
    """Shared invoke/modal/execute of the generate operators."""

    bl_options = {"REGISTER", "UNDO"}
    _timer = None

    def characters(self, context: bpy.types.Context) -> list[bpy.types.Object]:
        raise NotImplementedError

    def _begin(self, context: bpy.types.Context) -> bool:
        try:
            start_run(context, self.characters(context), self.run_settings(context), self.skipped(context))
        except scene.SceneError as error:
            set_report(str(error), True)
            self.report({"ERROR"}, REPORT.text)
            return False
        except ExpGestError as error:  # a typed error before the run: the panel shows its code
            set_report(error.message, error=error)
            self.report({"ERROR"}, REPORT.text)
            return False
        return True

    def run_settings(self, context: bpy.types.Context) -> dict[str, scene.Settings] | None:
        """Exact settings per character name (Generate Again), or None: each character's own."""
        return None

    def skipped(self, context: bpy.types.Context) -> list[tuple[str, str]]:
        """Characters left out, with why (reported with the results)."""
        return []

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not self._begin(context):
            return {"CANCELLED"}
        active = active_run()
        assert active is not None
        try:
            active.run.run_blocking()
        except Exception as error:  # a bug: the run is dropped, the next Generate works
            self.report({"ERROR"}, runs.fail_run(error))
            return {"CANCELLED"}
        return finish_run(context, self.report)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if not self._begin(context):
            return {"CANCELLED"}
        manager = context.window_manager
        self._timer = manager.event_timer_add(0.1, window=context.window)
        manager.modal_handler_add(self)
        runs.tag_redraw(context)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        active = active_run()
        if active is None:  # stopped from outside (add-on disabled)
            self._stop_timer(context)
            return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS":
            active.run.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        tick = time.perf_counter()
        try:
            finished = active.run.step()
        except Exception as error:  # a bug: stop the timer and drop the run rather than leave it running forever
            self._stop_timer(context)
            self.report({"ERROR"}, runs.fail_run(error))
            runs.tag_redraw(context)
            return {"CANCELLED"}
        active.longest_tick_s = max(active.longest_tick_s, time.perf_counter() - tick)
        runs.tag_redraw(context)
        if not finished:
            return {"PASS_THROUGH"}
        self._stop_timer(context)
        return finish_run(context, self.report)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender stops the modal operator itself (a file is loaded, the window closes): drop the run."""
        self._stop_timer(context)
        abandon_run()

    def _stop_timer(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None


def why_generate_cannot_run(context: bpy.types.Context) -> str:
    """Why no Generate can start now ('' when one can): a run in progress, no armature, no sound strip."""
    if active_run() is not None:
        return "A generation is running; wait for it or cancel it"
    if not any(o.type == "ARMATURE" for o in context.scene.objects):
        return "There is no armature in the scene: add one with Add SMPL-X Character"
    if not any(not info.muted for info in scene.sound_strips(scene.sequencer_scene(context))):
        return "There is no unmuted sound strip in the sequencer: add the dialogue with Add > Sound"
    return ""


def poll_with_reason(cls, reason: str) -> bool:
    """Operator poll: False with ``reason`` shown in the button's tooltip (Blender 3.0+)."""
    if reason:
        cls.poll_message_set(reason)
        return False
    return True


class EXPGEST_OT_generate(_GenerateBase, bpy.types.Operator):
    """Generate gestures for the selected character from its sound strip, as a new take on its NLA"""

    bl_idname = "expgest.generate"
    bl_label = "Generate Gestures"

    # Hidden: a visible property opens Blender's Adjust Last Operation panel, where any edit undoes the take
    # and re-runs the whole generation through execute(), blocking the UI with no progress and no Cancel.
    character: bpy.props.StringProperty(name="Character", default="", options={"HIDDEN", "SKIP_SAVE"},
                                        description="Armature object name (empty: the selected character)")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return poll_with_reason(cls, why_generate_cannot_run(context))

    def characters(self, context: bpy.types.Context) -> list[bpy.types.Object]:
        return [pick_character(context, self.character)]

    def _begin(self, context: bpy.types.Context) -> bool:
        try:
            self.characters(context)
        except scene.SceneError as error:
            set_report(str(error), True)
            self.report({"ERROR"}, REPORT.text)
            return False
        return super()._begin(context)


class EXPGEST_OT_generate_all(_GenerateBase, bpy.types.Operator):
    """Generate a take for every SMPL-X character that has a Sound Strip assigned, one after another"""

    bl_idname = "expgest.generate_all"
    bl_label = "Generate All"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return poll_with_reason(cls, why_generate_cannot_run(context))

    def characters(self, context: bpy.types.Context) -> list[bpy.types.Object]:
        found, _skipped = assigned_characters(context)
        if not found:
            raise scene.SceneError("No SMPL-X character has a Sound Strip assigned; select each character and "
                                   "pick its Sound Strip in the Gestures panel (Generate animates the selected "
                                   "one without).")
        return found

    def skipped(self, context: bpy.types.Context) -> list[tuple[str, str]]:
        _found, skipped = assigned_characters(context)
        return [(name, SKIPPED + "no Sound Strip assigned.") for name in skipped]


class EXPGEST_OT_cancel(bpy.types.Operator):
    """Cancel the running generation; the scene stays as it was"""

    bl_idname = "expgest.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return active_run() is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        active = active_run()
        if active is not None:
            active.run.cancel()
        return {"FINISHED"}


def floor_point(obj: bpy.types.Object) -> tuple[float, float, float]:
    """Armature-space point on the floor between the feet: the middle of the ankles in X and Y, the lowest
    bone head (or body vertex) in Z."""
    import numpy as np

    bones = obj.data.bones
    heads = np.array([list(bone.head_local) for bone in bones])
    feet = [bones[name].head_local for name in ("left_ankle", "right_ankle") if name in bones]
    middle = np.mean([list(head) for head in feet], axis=0) if feet else heads.mean(axis=0)
    lowest = float(heads[:, 2].min())
    body = bpy.data.objects.get(obj.get("expgest_body", ""))
    if body is not None and body.type == "MESH" and len(body.data.vertices):
        coords = np.empty(len(body.data.vertices) * 3)
        body.data.vertices.foreach_get("co", coords)
        lowest = min(lowest, float(coords.reshape(-1, 3)[:, 2].min()))
    return float(middle[0]), float(middle[1]), lowest


def stand_origin_on_floor(obj: bpy.types.Object) -> None:
    """Move the character's rest pose (bones and body) so its object origin lies on the floor between its
    feet, leaving it where it stood: the origin is then where an animator places and turns a character."""
    from mathutils import Matrix, Vector

    point = Vector(floor_point(obj))
    shift = Matrix.Translation(-point)
    obj.data.transform(shift)
    for child in obj.children:
        if child.type == "MESH" and child.parent_type == "OBJECT":
            child.data.transform(child.matrix_parent_inverse.inverted() @ shift @ child.matrix_parent_inverse)
    obj.location = obj.matrix_world @ point
    bpy.context.view_layer.update()


class EXPGEST_OT_add_character(bpy.types.Operator):
    """Add a 55-bone SMPL-X armature (and optionally a skinned mannequin body) at the 3D cursor"""

    bl_idname = "expgest.add_character"
    bl_label = "Add SMPL-X Character"
    bl_options = {"REGISTER", "UNDO"}

    name: bpy.props.StringProperty(name="Name", default="SMPLX")
    with_mesh: bpy.props.BoolProperty(name="Body Mesh", default=True,
                                      description="Add a skinned body bound to the armature (built by the backend: "
                                                  "the wooden mannequin, or your SMPL-X model when its folder is set)")

    def execute(self, context: bpy.types.Context) -> set[str]:
        import shutil

        from . import rig

        if context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        folder = None
        no_body = ""
        try:
            character = None
            if self.with_mesh:
                try:  # the body is optional: without it the skeleton alone is added
                    folder = scene.new_work_dir("expgest_character_")
                    character = build_character_file(context, folder)
                except scene.SceneError as error:
                    no_body = f"{error} Added the skeleton without a body."
                    self.report({"WARNING"}, no_body)
            obj = rig.build_character_object(context, name=self.name, character=character,
                                             with_mesh=self.with_mesh)
        except Exception as error:
            traceback.print_exc()
            set_report(f"Could not build the character: {error}", True)
            self.report({"ERROR"}, REPORT.text)
            return {"CANCELLED"}
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        stand_origin_on_floor(obj)
        obj.location = context.scene.cursor.location
        context.scene.expgest.character = obj
        set_report(no_body or f"Added '{obj.name}', standing on the 3D cursor; select it and click Generate Gestures.")
        self.report({"INFO"}, f"Added '{obj.name}'.")
        return {"FINISHED"}


class EXPGEST_OT_check_backend(bpy.types.Operator):
    """Check that the backend's Python interpreter can run the bundled backend"""

    bl_idname = "expgest.check_backend"
    bl_label = "Check Backend"

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = preferences.resolve(context)
        python = settings.python
        problem, has_torch = jobs.probe_interpreter(python)
        works = (f"The backend works with {preferences.SOURCE_LABELS[settings.python_source]} ({python}). Engines: "
                 "procedural ready; ExpGest " + ("ready (needs the weights in the Models Folder)." if has_torch else
                                                 "not installed (Install ExpGest Engine in the preferences)."))
        set_report(problem or works, problem is not None,
                   error=ServerNotStartedError(problem) if problem else None)
        self.report({"ERROR"} if problem else {"INFO"}, REPORT.text)
        return {"CANCELLED"} if problem else {"FINISHED"}


CLASSES = (EXPGEST_OT_generate, EXPGEST_OT_generate_all, EXPGEST_OT_cancel, EXPGEST_OT_add_character,
           EXPGEST_OT_check_backend)
