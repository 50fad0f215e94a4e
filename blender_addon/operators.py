"""Operators: thin adapters between Blender and the pure parts (HOUSE_STYLE 3).

``expgest.generate`` / ``expgest.generate_all``: ``invoke()`` starts a ``jobs.GenerationRun`` and a modal
timer advances it (the main thread never waits on the backend); ``execute()`` runs the same steps to the
end synchronously (scripts, tests, background mode). The scene is only written when the run is over and
succeeded, in ``_finish``, inside the operator, so one generation is one undo step and a crash, an error or
a cancel leaves the scene as it was.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

import bpy

from . import jobs, keyframes, preferences, retarget, rig, scene
from .backend.errors import ExpGestError, ServerNotStartedError
from .report import Report, ReportLine

# The backend process, kept warm between runs (models stay loaded); stopped in unregister().
_BACKEND: jobs.Backend | None = None
_BACKEND_PYTHON: str = ""


@dataclass
class ActiveRun:
    """The run in progress (at most one), with what is needed to apply its results."""

    run: jobs.GenerationRun
    plans: dict[str, scene.CharacterPlan]
    failures: list[tuple[str, str]] = field(default_factory=list)
    errors: dict[str, ExpGestError] = field(default_factory=dict)  # a failed character's error, code intact
    started: float = field(default_factory=time.monotonic)
    longest_tick_s: float = 0.0


_ACTIVE: ActiveRun | None = None


REPORT = Report()  # the panel's state (``report.py``)


def set_report(text: str | list[ReportLine], is_error: bool = False, *, error: BaseException | None = None) -> None:
    """Replace the panel's report (and redraw the sidebars showing it).

    Args:
        text: one message, or the report's lines.
        is_error: whether the one message is an error.
        error: the error the message reports (its code and title go to the panel).
    """
    if isinstance(text, list):
        REPORT.lines = list(text)
    elif not text:
        REPORT.lines = []
    elif is_error or error is not None:
        REPORT.lines = [ReportLine.for_error(for_blender(text), error)]
    else:
        REPORT.lines = [ReportLine(for_blender(text))]
    context = bpy.context
    if getattr(context, "window_manager", None) is not None:
        _tag_redraw(context)


# Backend sentences written for the command line, and what they mean in Blender.
_CLI_WORDING = (
    ("trim the audio or choose a shorter range with --start/--end (audio start_s/end_s).",
     "trim the sound strip (or split it) so that a shorter part plays."),
    ("(--models DIR)", "(Edit > Preferences > Add-ons > ExpGest Gestures > Models Folder, or EXPGEST_MODELS)"),
)


def for_blender(message: str) -> str:
    """A message for the Blender surface: command-line wording replaced, no joined '.;'."""
    for cli, blender in _CLI_WORDING:
        message = message.replace(cli, blender)
    return message.replace(".;", ";")


SKIPPED = "skipped: "  # a failure entry that is a character left out on purpose (Generate All)
COMPRESSED_LENGTH_SLACK_S = 0.25  # how far a sound played to its end may decode from its strip's length
_EXIT_HOOK = False


def _ensure_exit_hook() -> None:
    """Stop the warm backend politely when Blender exits without unregistering the add-on (scripts, -b).

    Registered after the first backend exists, so it runs before the client's own last-resort kill.
    """
    global _EXIT_HOOK
    if not _EXIT_HOOK:
        import atexit

        atexit.register(shutdown_backend)
        _EXIT_HOOK = True


def active_run() -> ActiveRun | None:
    """The run in progress, for the panel and ``expgest.cancel``."""
    return _ACTIVE


def abandon_run() -> None:
    """Drop the run in progress without applying it: its scene is going away (another file is loaded) or its
    modal operator was stopped by Blender. Its backend is stopped (it may be mid-request) and its files deleted,
    so a new generation can start at once."""
    global _ACTIVE
    active = _ACTIVE
    if active is None:
        return
    _ACTIVE = None
    active.run.cancel()
    if active.run.backend is not None:
        active.run.backend.shutdown(1.0)
    active.run.cleanup()
    print("ExpGest: the generation in progress was dropped (its scene was closed); nothing was written.")


@bpy.app.handlers.persistent
def on_load_pre(*_args) -> None:
    """``bpy.app.handlers.load_pre``: a run never outlives the file it was started in, nor does its report."""
    abandon_run()
    REPORT.lines = []


def shutdown_backend() -> None:
    """Cancel any run and stop the warm backend (shutdown -> terminate -> kill inside the client)."""
    global _BACKEND, _ACTIVE
    if _ACTIVE is not None:
        _ACTIVE.run.cancel()
        _ACTIVE.run.cleanup()
        _ACTIVE = None
    if _BACKEND is not None:
        _BACKEND.shutdown(3.0)
        _BACKEND = None


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


def _armature_of(obj: bpy.types.Object | None) -> bpy.types.Object | None:
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
    active = _armature_of(context.active_object)
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


# ---------------------------------------------------------------------------------------------------
# Starting and finishing a run


def _backend_for(python: str) -> jobs.Backend | None:
    """The warm backend when it runs the same interpreter and is alive, else None (the run starts one)."""
    global _BACKEND
    if _BACKEND is not None and (_BACKEND_PYTHON != python or not _BACKEND.alive):
        _BACKEND.shutdown(1.0)
        _BACKEND = None
    return _BACKEND


NEW_SEED_MAX = 99_999  # new seeds have at most five digits: readable in a narrow sidebar and in take reports


def new_seed() -> int:
    """A fresh random seed for a take (1 .. 99 999; the Seed field accepts any up to 2**31 - 1)."""
    import random

    return random.SystemRandom().randint(1, NEW_SEED_MAX)


def settings_for(obj: bpy.types.Object) -> scene.Settings:
    """The character's settings for a new take: a new seed unless its seed is locked."""
    import dataclasses

    settings = scene.Settings.from_object(obj)
    return settings if settings.lock_seed else dataclasses.replace(settings, seed=new_seed())


def start_run(context: bpy.types.Context, characters: list[bpy.types.Object],
              settings: dict[str, scene.Settings] | None = None, skipped: list[tuple[str, str]] = ()) -> ActiveRun:
    """Plan every character (reads the scene) and create the run; nothing is started or written yet.

    ``settings`` gives a character's exact settings (Generate Again); others use ``settings_for``.
    ``skipped`` are characters not run, with why (reported with the results).

    Raises:
        ServerNotStartedError: when the backend interpreter is not usable.
        ExpGestError: the one character's typed error (an invalid request ...) when it could not be planned.
        scene.SceneError: when no character can be planned otherwise.
    """
    global _ACTIVE
    if _ACTIVE is not None:
        raise scene.SceneError("A generation is already running; wait for it or cancel it.")
    preferences_settings = preferences.resolve(context)
    problem = preferences.quick_python_problem(preferences_settings.python)
    if problem:
        raise ServerNotStartedError(problem + " (Edit > Preferences > Add-ons > ExpGest Gestures, or set "
                                    f"{preferences.ENV_PYTHON}.)")
    work_dir = scene.new_work_dir()
    planned: list[jobs.PlannedGeneration] = []
    plans: dict[str, scene.CharacterPlan] = {}
    failures: list[tuple[str, str]] = list(skipped)
    errors: dict[str, ExpGestError] = {}
    for obj in characters:
        if obj.library is not None:  # a take on linked data shows now and is gone after saving
            failures.append((obj.name, f"'{obj.name}' is linked from '{obj.library.filepath}', and Blender does "
                                       "not save animation added to linked objects; make it editable with Object > "
                                       "Library Override > Make, then generate again."))
            continue
        if obj.mode == "EDIT":  # bone edits not yet left Edit Mode: the rest pose the keys are solved for
            obj.update_from_editmode()
        try:
            keyframes.read_armature_rest(obj)
            chosen = (settings or {}).get(obj.name) or settings_for(obj)
            job, plan = scene.plan_generation(context, obj, models=preferences_settings.models,
                                              device=preferences_settings.device, work_dir=work_dir, settings=chosen)
        except (scene.SceneError, retarget.RetargetError, ExpGestError) as error:
            failures.append((obj.name, str(error)))
            if isinstance(error, ExpGestError):
                errors[obj.name] = error
            continue
        planned.append(job)
        plans[obj.name] = plan
    if not planned:
        import shutil

        shutil.rmtree(work_dir, ignore_errors=True)
        unskipped = [name for name, message in failures if not message.startswith(SKIPPED)]
        if len(unskipped) == 1 and unskipped[0] in errors:  # one character, one typed error: keep its class
            raise errors[unskipped[0]]
        raise scene.SceneError(" ".join(message for _name, message in failures if not message.startswith(SKIPPED))
                               or "Nothing to generate.")
    python = preferences_settings.python
    run = jobs.GenerationRun(plans=planned, backend_factory=lambda: jobs.make_backend(python),
                             backend=_backend_for(python))
    planned[-1].temp_files += (work_dir,)
    _ACTIVE = ActiveRun(run=run, plans=plans, failures=failures, errors=errors)
    set_report("")  # the last result no longer applies: the panel shows this run's progress, then its result
    return _ACTIVE


def _apply_outcome(context: bpy.types.Context, active: ActiveRun, outcome: jobs.Outcome) -> tuple[str, list[str]]:
    """Load a result, retarget it, write the take; returns a one-line summary and notes. Raises on failure."""
    from .backend.motion.motion import load_npz

    plan = active.plans[outcome.plan.key]
    obj = bpy.data.objects.get(plan.object_name)  # not context.scene: the user may have switched scenes
    if obj is None or obj.type != "ARMATURE" or not obj.users_scene:
        raise retarget.RetargetError(f"'{plan.object_name}' was renamed or deleted while it was generated (or "
                                     "the scene changed); nothing was written, generate it again.")
    if obj.mode == "EDIT":  # the user entered Edit Mode during the run
        obj.update_from_editmode()
    motion = load_npz(outcome.result["output"])
    if abs(motion.fps - plan.fps) > 1e-6:
        raise retarget.RetargetError(f"The backend returned {motion.fps:g} fps instead of {plan.fps:g}.")
    rest = keyframes.read_armature_rest(obj)
    tolerance = 0  # both sides count frames with GenerationRequest.frame_count: they agree exactly
    if plan.to_file_end:
        # Blender estimates a compressed file's length (an MP3 strip can be frames longer than its audio, an
        # AAC file decodes frames longer than its strip): the take holds its last pose to the strip's end, or
        # drops what lies past it (Blender does not play it).
        tolerance = max(1, int(round(COMPRESSED_LENGTH_SLACK_S * plan.fps)))
    poses, trans = retarget.fit_frame_count(motion.poses, motion.trans, plan.frames, tolerance=tolerance)
    tracks = retarget.retarget_motion(poses, trans, rest)
    settings = plan.settings or scene.Settings.from_object(obj)
    stored = dict(settings.to_take(), sound_strip=plan.strip_name)
    written = keyframes.apply_take(obj, tracks, strip_name=plan.strip_name, frame_start=plan.frame_start,
                                   options=settings.take_options(), settings=stored)
    obj.expgest.seed = settings.seed  # the seed field shows the newest take's seed
    notes = list(plan.notes) + list(written.warnings) + list(outcome.result.get("warnings", []))
    notes += rig.map_notes(obj)  # rigs hook (issue 10): skipped fingers/jaw/toes, Rigify/ARP FK advice
    frames = f"{written.frames} frame" + ("" if written.frames == 1 else "s")
    summary = f"'{written.strip}': {frames} from frame {written.frame_start}, seed {settings.seed}"
    reduction = written.reduction
    if reduction is not None:
        summary += (f"; {reduction.keys:,} keys instead of {reduction.dense_keys:,} "
                    f"(max {reduction.max_rotation_deg:.2f}\u00b0, {reduction.max_location_m * 1000:.2f} mm off)")
    return summary, notes


def finish_run(context: bpy.types.Context, report) -> set[str]:
    """Apply the finished run's results (the only scene writes), report, clean up; returns the operator result."""
    global _ACTIVE, _BACKEND, _BACKEND_PYTHON
    active = _ACTIVE
    assert active is not None and active.run.finished
    run = active.run
    _ACTIVE = None
    _BACKEND = run.backend
    _BACKEND_PYTHON = preferences.resolve(context).python
    if _BACKEND is not None:
        _ensure_exit_hook()
    try:
        if run.cancelled:
            set_report("Cancelled; nothing was changed.")
            report({"WARNING"}, REPORT.text)
            return {"CANCELLED"}
        done: list[str] = []
        notes: list[str] = []
        failures = list(active.failures)
        errors = dict(active.errors)
        for outcome in run.outcomes:
            if outcome.error is not None:
                if outcome.error.stderr:
                    print(f"ExpGest: backend log for {outcome.plan.label}:\n{outcome.error.stderr}")
                failures.append((outcome.plan.key, for_blender(outcome.error.message)))
                errors[outcome.plan.key] = outcome.error
                continue
            try:
                summary, take_notes = _apply_outcome(context, active, outcome)
                done.append(summary)
                notes += take_notes
            except (retarget.RetargetError, ExpGestError, OSError, ValueError) as error:
                failures.append((outcome.plan.key, str(error)))
                if isinstance(error, ExpGestError):
                    errors[outcome.plan.key] = error
            except Exception as error:  # a bug: full traceback on the console, one line for the user
                traceback.print_exc()
                failures.append((outcome.plan.key, f"internal error: {error}"))
        skipped = [f"Skipped '{name}': {why[len(SKIPPED):]}" for name, why in failures if why.startswith(SKIPPED)]
        failed_names = [name for name, why in failures if not why.startswith(SKIPPED)]
        failed = [f"Failed '{name}': {why}" for name, why in failures if not why.startswith(SKIPPED)]
        lines = ([f"Generated {line}" for line in done] + skipped + [f"Note: {note}" for note in notes] + failed)
        set_report([ReportLine(for_blender(line)) for line in lines[:len(lines) - len(failed)]]
                   + [ReportLine.for_error(for_blender(line), errors.get(name))
                      for name, line in zip(failed_names, failed, strict=True)])
        for line in lines:
            print(f"ExpGest: {line}")
        for line in [f"Generated {line}" for line in done]:
            report({"INFO"}, line)
        for line in skipped + [f"Note: {note}" for note in notes]:
            report({"WARNING"}, line)
        # A batch that made some takes reports its failures as warnings (scripts keep going, the panel shows
        # them); when nothing was made, they are errors.
        for line in failed:
            report({"WARNING"} if done else {"ERROR"}, for_blender(line))
        return {"FINISHED"} if done else {"CANCELLED"}
    finally:
        run.cleanup()


def _tag_redraw(context: bpy.types.Context) -> None:
    """Redraw the sidebars only (a whole 3D View redraw per progress tick would cost a frame each time)."""
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                for region in area.regions:
                    if region.type == "UI":
                        region.tag_redraw()


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
        _ACTIVE.run.run_blocking()
        return finish_run(context, self.report)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if not self._begin(context):
            return {"CANCELLED"}
        manager = context.window_manager
        self._timer = manager.event_timer_add(0.1, window=context.window)
        manager.modal_handler_add(self)
        _tag_redraw(context)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        active = _ACTIVE
        if active is None:  # stopped from outside (add-on disabled)
            self._stop_timer(context)
            return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS":
            active.run.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        tick = time.perf_counter()
        finished = active.run.step()
        active.longest_tick_s = max(active.longest_tick_s, time.perf_counter() - tick)
        _tag_redraw(context)
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
    if _ACTIVE is not None:
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
        return _ACTIVE is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        _ACTIVE.run.cancel()
        return {"FINISHED"}


def build_character_file(context: bpy.types.Context, folder: str, *, gender: str = "neutral") -> str:
    """Ask the backend for a character with its skinned body (``python -m backend character``).

    Runs synchronously (a few seconds, once per Add Character click).

    Returns:
        The ``.npz`` path.

    Raises:
        scene.SceneError: with what to fix when the backend cannot build it.
    """
    import os
    import subprocess

    settings = preferences.resolve(context)
    problem = preferences.quick_python_problem(settings.python)
    if problem:
        raise scene.SceneError(problem)
    output = os.path.join(folder, "character.npz")
    args = [settings.python, "-m", "backend", "character", "-o", output, "--gender", gender]
    if settings.smplx_dir:
        args += ["--smplx-dir", settings.smplx_dir]
    try:
        result = subprocess.run(args, cwd=jobs.bundle_root(), env=jobs.backend_environment(python=settings.python),
                                capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise scene.SceneError(f"The backend could not build the body ({error}).") from error
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise scene.SceneError(f"The backend could not build the body: {last.removeprefix('error: ')}")
    return output


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
        import tempfile

        from . import rig

        if context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        folder = tempfile.mkdtemp(prefix="expgest_character_")
        try:
            character = None
            if self.with_mesh:
                try:
                    character = build_character_file(context, folder)
                except scene.SceneError as error:
                    self.report({"WARNING"}, f"{error} Added the skeleton without a body.")
            obj = rig.build_character_object(context, name=self.name, character=character,
                                             with_mesh=self.with_mesh)
        except Exception as error:
            traceback.print_exc()
            set_report(f"Could not build the character: {error}", True)
            self.report({"ERROR"}, REPORT.text)
            return {"CANCELLED"}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        stand_origin_on_floor(obj)
        obj.location = context.scene.cursor.location
        context.scene.expgest.character = obj
        set_report(f"Added '{obj.name}', standing on the 3D cursor; select it and click Generate Gestures.")
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
