"""The run in progress and the warm backend: the add-on's run state and orchestration (no operators here).

One generation run at a time (``ActiveRun``), planned from the scene by ``start_run``, advanced by the
operators (``expgest.generate`` / ``generate_all``: a modal timer, or a loop in ``execute()``), and applied to
the scene by ``finish_run``, the only scene writes, so a crash, an error or a cancel leaves the scene as it
was. Between runs the backend process stays warm (models stay loaded); ``shutdown_backend`` stops it
(add-on unregister, Blender exit, a new backend interpreter). ``build_character_file`` asks the same warm
backend for a character's body. ``REPORT`` is the panel's last result, in memory only.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

import bpy

from . import jobs, keyframes, preferences, retarget, rig, scene
from .backend import timeouts
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
# The last finished run's longest main-thread timer tick (seconds): a fast run can end between two polls of
# a script watching ``active_run()`` (the GUI test), so it is kept after the run is gone.
last_longest_tick_s = 0.0


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
        tag_redraw(context)


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


def abandon_run(why: str = "its scene was closed") -> None:
    """Drop the run in progress without applying it: its scene is going away (another file is loaded), its
    modal operator was stopped by Blender, or it failed on a bug. Its backend is stopped (it may be
    mid-request) and its files deleted, so a new generation can start at once."""
    global _ACTIVE
    active = _ACTIVE
    if active is None:
        return
    _ACTIVE = None
    active.run.cancel()
    if active.run.backend is not None:
        active.run.backend.shutdown(timeouts.QUICK_STOP_S)
    active.run.cleanup()
    print(f"ExpGest: the generation in progress was dropped ({why}); nothing was written.")


def fail_run(error: BaseException) -> str:
    """A run stopped by an unexpected error (a bug): drop it as ``abandon_run`` does, so Generate works again
    instead of waiting forever for a run that no longer advances; returns the one line for the user (the
    traceback goes to the console)."""
    traceback.print_exc()
    abandon_run("an internal error")
    message = (f"ExpGest stopped on an internal error ({type(error).__name__}: {error}); nothing was changed. "
               "The system console has the details; Generate again to retry.")
    set_report(message, True)
    return message


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
        _BACKEND.shutdown(timeouts.SHUTDOWN_WAIT_S)
        _BACKEND = None


def _backend_for(python: str) -> jobs.Backend | None:
    """The warm backend when it runs the same interpreter and is alive, else None (the run starts one)."""
    global _BACKEND
    if _BACKEND is not None and (_BACKEND_PYTHON != python or not _BACKEND.alive):
        _BACKEND.shutdown(timeouts.QUICK_STOP_S)
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
                             backend=_backend_for(python), clips_per_forward=preferences_settings.clips_per_forward)
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
    global _ACTIVE, _BACKEND, _BACKEND_PYTHON, last_longest_tick_s
    active = _ACTIVE
    assert active is not None and active.run.finished
    run = active.run
    _ACTIVE = None
    last_longest_tick_s = active.longest_tick_s
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


def tag_redraw(context: bpy.types.Context) -> None:
    """Redraw the sidebars only (a whole 3D View redraw per progress tick would cost a frame each time)."""
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                for region in area.regions:
                    if region.type == "UI":
                        region.tag_redraw()


def build_character_file(context: bpy.types.Context, folder: str, *, gender: str = "neutral") -> str:
    """Ask the backend server for a character with its skinned body (its ``character`` method).

    Runs synchronously (a few seconds, once per Add Character click) on the warm backend, which stays warm
    for the next Generate; while a generation runs, a separate backend builds it (the warm one is busy).

    Returns:
        The ``.npz`` path.

    Raises:
        scene.SceneError: with what to fix when the backend cannot build it.
    """
    import os

    global _BACKEND, _BACKEND_PYTHON
    settings = preferences.resolve(context)
    problem = preferences.quick_python_problem(settings.python)
    if problem:
        raise scene.SceneError(problem)
    params = {"output": os.path.join(folder, "character.npz"), "gender": gender,
              "smplx_dir": settings.smplx_dir or None}
    shared = _ACTIVE is None
    backend = _backend_for(settings.python) if shared else None
    if backend is None:
        backend = jobs.make_backend(settings.python)
    try:
        if not backend.alive:
            backend.start(jobs.START_TIMEOUT_S)
        result = backend.character(params, timeout=jobs.CHARACTER_TIMEOUT_S)
    except ExpGestError as error:
        raise scene.SceneError(f"The backend could not build the body: {error.message}") from None
    finally:
        if shared and backend.alive:
            _BACKEND, _BACKEND_PYTHON = backend, settings.python
            _ensure_exit_hook()
        elif backend is not _BACKEND:
            backend.shutdown(timeouts.QUICK_STOP_S)
    return str(result["output"])
