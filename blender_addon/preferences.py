"""Add-on preferences: the backend's Python interpreter, the weights folder, the compute device, and the
one-click ExpGest engine install.

Which Python runs the backend, first that applies: ``EXPGEST_BACKEND_PYTHON``; the Backend Python chosen in
the preferences; the managed ExpGest engine environment (**Install ExpGest Engine**); Blender's own Python
with the extension's bundled scipy/soundfile wheels (procedural engine only). So a user with Blender alone
generates with nothing configured. Environment variables override the stored values (DESIGN.md section 6):
``EXPGEST_BACKEND_PYTHON`` and ``EXPGEST_MODELS``. Read them only through ``resolve()`` (HOUSE_STYLE 18).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import bpy

from . import engine_install

ENV_PYTHON = "EXPGEST_BACKEND_PYTHON"
ENV_MODELS = "EXPGEST_MODELS"
DEVICE_ITEMS = [
    ("auto", "Automatic", "A GPU when the backend finds one, else the CPU"),
    ("cpu", "CPU", "Always the CPU"),
    ("cuda", "CUDA", "An NVIDIA GPU"),
    ("mps", "Apple GPU", "Apple silicon (Metal)"),
]


class EXPGEST_AddonPreferences(bpy.types.AddonPreferences):
    """Where the backend runs and which weights it uses."""

    bl_idname = __package__

    backend_python: bpy.props.StringProperty(
        name="Backend Python", subtype="FILE_PATH", default="",
        description="Python interpreter of the environment with the backend's requirements (torch, numpy, ...). "
                    f"{ENV_PYTHON} overrides it")
    models_dir: bpy.props.StringProperty(
        name="Models Folder", subtype="DIR_PATH", default="",
        description=f"Folder with the released ExpGest weights (only the ExpGest engine needs it). {ENV_MODELS} "
                    "overrides it")
    device: bpy.props.EnumProperty(name="Device", items=DEVICE_ITEMS, default="auto",
                                   description="Where the ExpGest engine computes (the Procedural engine uses the CPU)")
    clips_per_forward: bpy.props.EnumProperty(
        name="Clips per Forward", default="auto",
        items=[("auto", "Automatic", "Up to 8 characters per batched step (on a 2-core CPU measured 1.1-1.5x "
                                     "faster than one after another; more on a GPU)"),
               ("1", "One at a Time", "Every character its own request: a crash costs only that character"),
               ("2", "2", "Up to 2 characters per batched step"),
               ("4", "4", "Up to 4 characters per batched step"),
               ("8", "8", "Up to 8 characters per batched step")],
        description="Generate All with the ExpGest engine: how many characters' windows are denoised in one "
                    "batched step (each character keeps its own seed, emotion and motion)")
    smplx_dir: bpy.props.StringProperty(
        name="SMPL-X Model Folder", subtype="DIR_PATH", default="",
        description="Optional: your own SMPL-X model files, for characters with the real SMPL-X body (needs the "
                    "smplx package in the backend); empty: the built-in skeleton and the wooden mannequin")
    engine_variant: bpy.props.EnumProperty(
        name="PyTorch Build", default=0,
        items=[("auto", "Automatic", "CUDA when an NVIDIA driver is found, else CPU (macOS: the standard build)"),
               ("cpu", "CPU", "The CPU build of PyTorch (smaller download)"),
               ("cuda", "CUDA (NVIDIA)", "The CUDA 12.8 build of PyTorch (large download; needs an NVIDIA GPU)"),
               ("default", "Standard", "PyTorch from the standard package index (macOS: Apple GPU support)")],
        description="Which PyTorch the ExpGest engine install fetches")
    engine_wheels: bpy.props.StringProperty(
        name="Offline Wheels", subtype="DIR_PATH", default="",
        description="Optional: a folder of wheel files to install the engine from without network (for example "
                    "a studio mirror); empty: download from the package indexes")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        resolved = resolve(context)
        box = layout.box()
        box.label(text="Backend", icon="CONSOLE")
        box.label(text=f"Runs with: {SOURCE_LABELS[resolved.python_source]}", icon="INFO")
        row = box.row()
        row.enabled = not os.environ.get(ENV_PYTHON)
        row.prop(self, "backend_python", text="Python (optional)")
        if os.environ.get(ENV_PYTHON):
            box.label(text=f"Using {ENV_PYTHON}={resolved.python}", icon="INFO")
        problem = quick_python_problem(resolved.python)
        if problem:
            box.label(text=problem, icon="ERROR")
        box.operator("expgest.check_backend", icon="FILE_REFRESH")
        self._draw_engine(box.box(), context, resolved)
        box = layout.box()
        box.label(text="ExpGest weights and bodies", icon="FILE_FOLDER")
        row = box.row()
        row.enabled = not os.environ.get(ENV_MODELS)
        row.prop(self, "models_dir")
        if os.environ.get(ENV_MODELS):
            box.label(text=f"Using {ENV_MODELS}={resolved.models}", icon="INFO")
        row = box.row()
        row.operator("expgest.check_models", icon="VIEWZOOM")
        for line, icon in MODELS_REPORT:
            for index, part in enumerate(_wrap(line, 110)):
                box.label(text=part, icon=icon if index == 0 else "BLANK1")
        box.prop(self, "device")
        box.prop(self, "clips_per_forward")
        box.prop(self, "smplx_dir")

    def _draw_engine(self, layout: bpy.types.UILayout, context: bpy.types.Context, resolved: Resolved) -> None:
        layout.label(text="ExpGest diffusion engine (optional)", icon="PACKAGE")
        root = engine_root()
        installer = INSTALL.get("installer")
        if installer is not None and not installer.done:
            layout.label(text=installer.status or "Installing...", icon="SORTTIME")
            layout.operator("expgest.cancel_engine_install", icon="CANCEL")
            return
        if installer is not None and installer.state in ("failed", "cancelled"):
            for line in _wrap(installer.status, 90):
                layout.label(text=line, icon="ERROR" if installer.state == "failed" else "INFO")
        installed = root is not None and engine_install.installed_python(root) is not None
        if installed:
            layout.label(text=f"Installed in {root / engine_install.ENGINE_DIR}", icon="CHECKMARK")
            row = layout.row()
            row.operator("expgest.install_engine", text="Reinstall", icon="FILE_REFRESH")
            row.operator("expgest.remove_engine", icon="TRASH")
        else:
            layout.label(text="Not installed: the procedural engine works without it.")
            layout.prop(self, "engine_variant")
            layout.prop(self, "engine_wheels")
            variant = engine_variant(self.engine_variant)
            layout.label(text=f"Size: {engine_install.SIZES[variant]}.")
            for line in _wrap(engine_install.LICENCE_NOTE, 90):
                layout.label(text=line)
            layout.operator("expgest.install_engine", icon="IMPORT")
        if root is not None and (root / engine_install.LOG_NAME).is_file():
            layout.operator("wm.path_open", text="Open Install Log", icon="TEXT").filepath = \
                str(root / engine_install.LOG_NAME)


SOURCE_LABELS = {
    "environment": f"the Python in {ENV_PYTHON}",
    "preferences": "the Python chosen below",
    "engine": "the installed ExpGest engine (both engines)",
    "blender": "Blender's own Python (procedural engine)",
}
# In memory only (never saved in a file): the running engine install and the last models-folder check.
INSTALL: dict[str, engine_install.Installer] = {}
MODELS_REPORT: list[tuple[str, str]] = []


@dataclass(frozen=True)
class Resolved:
    """Effective settings: ``python`` and ``models`` after the environment overrides.

    ``python_source`` says where ``python`` came from: ``environment``, ``preferences``, ``engine`` (the
    managed environment) or ``blender`` (Blender's own interpreter with the bundled wheels).
    """

    python: str
    python_from_env: bool
    models: str
    device: str
    smplx_dir: str
    python_source: str = "blender"
    clips_per_forward: int | str = "auto"  # Generate All with ExpGest: "auto" or 1, 2, 4, 8


def engine_root() -> Path | None:
    """The extension's user folder that holds the managed engine environment (None if Blender has none)."""
    try:
        return Path(bpy.utils.extension_path_user(__package__, path="", create=True))
    except (AttributeError, ValueError, OSError):
        # Blender < 4.2 (legacy add-on): a folder in the user's scripts data.
        try:
            return Path(bpy.utils.user_resource("SCRIPTS", path=os.path.join("expgest", "engine_data"), create=True))
        except (TypeError, OSError):
            return None


def engine_variant(choice: str) -> str:
    """The PyTorch build for the preference ``choice`` (``auto`` decided on this machine)."""
    return engine_install.default_variant() if choice == "auto" else choice


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def _addon_preferences(context: bpy.types.Context) -> EXPGEST_AddonPreferences | None:
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def resolve(context: bpy.types.Context) -> Resolved:
    """The effective backend interpreter, weights folder and device."""
    prefs = _addon_preferences(context)
    env_python = _path(os.environ.get(ENV_PYTHON, ""))
    stored_python = _path(prefs.backend_python) if prefs and prefs.backend_python else ""
    env_models = _path(os.environ.get(ENV_MODELS, ""))
    stored_models = _path(prefs.models_dir) if prefs and prefs.models_dir else ""
    if env_python:
        python, source = env_python, "environment"
    elif stored_python:
        python, source = stored_python, "preferences"
    else:
        root = engine_root()
        managed = engine_install.installed_python(root) if root is not None else None
        python, source = (str(managed), "engine") if managed is not None else (sys.executable, "blender")
    return Resolved(python=interpreter_in(python), python_from_env=bool(env_python),
                    models=env_models or stored_models, device=prefs.device if prefs else "auto",
                    smplx_dir=_path(prefs.smplx_dir) if prefs and prefs.smplx_dir else "",
                    python_source=source, clips_per_forward=_clips_per_forward(prefs))


def _clips_per_forward(prefs: EXPGEST_AddonPreferences | None) -> int | str:
    choice = prefs.clips_per_forward if prefs is not None else "auto"
    return int(choice) if choice.isdigit() else "auto"


def _path(text: str) -> str:
    """A path as typed: ``~`` expanded, Blender's ``//`` (relative to the .blend) made absolute."""
    text = text.strip()
    return bpy.path.abspath(os.path.expanduser(text)) if text else ""


def interpreter_in(path: str) -> str:
    """``path``, or the Python interpreter inside it when it is an environment's folder (or its ``bin``)."""
    if not path or not os.path.isdir(path):
        return path
    for name in ("bin/python3", "bin/python", "Scripts/python.exe", "python3", "python", "python.exe"):
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return candidate
    return path


def quick_python_problem(python: str) -> str | None:
    """A cheap check (no subprocess) that the interpreter is set and exists; the sentence to show, or None."""
    if not python:
        return "No backend Python is set: choose the interpreter of the backend's environment (Backend Python)."
    if os.path.isdir(python):
        return f"Backend Python: '{python}' is a folder without a Python interpreter (bin/python) in it"
    if not os.path.isfile(python):
        return f"Backend Python not found: {python}"
    if not os.access(python, os.X_OK):
        return f"Backend Python is not executable: {python}"
    return None


# ---------------------------------------------------------------------------------------------------
# Engine install, remove and the models-folder check


class EXPGEST_OT_install_engine(bpy.types.Operator):
    """Install PyTorch, transformers and safetensors into the add-on's own environment (for the ExpGest engine)"""

    bl_idname = "expgest.install_engine"
    bl_label = "Install ExpGest Engine"

    _timer = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        installer = INSTALL.get("installer")
        if installer is not None and not installer.done:
            cls.poll_message_set("An install is already running.")
            return False
        return engine_root() is not None

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        prefs = _addon_preferences(context)
        variant = engine_variant(prefs.engine_variant if prefs else "auto")
        return context.window_manager.invoke_confirm(
            self, event, title="Install the ExpGest engine?",
            message=f"PyTorch ({variant}): {engine_install.SIZES[variant]}. {engine_install.LICENCE_NOTE}",
            confirm_text="Install") if bpy.app.version >= (4, 1, 0) else context.window_manager.invoke_confirm(
            self, event)

    def execute(self, context: bpy.types.Context) -> set[str]:
        installer = start_engine_install(context)
        if installer.done:
            self.report({"ERROR"}, installer.status)
            return {"CANCELLED"}
        if not bpy.app.background:
            self._timer = context.window_manager.event_timer_add(0.5, window=context.window)
            context.window_manager.modal_handler_add(self)
            return {"RUNNING_MODAL"}
        while installer.poll() == "running":  # scripts and tests: run to the end
            import time

            time.sleep(0.2)
        return self._finish(context, installer)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        installer = INSTALL["installer"]
        installer.poll()
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()
        if not installer.done:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._finish(context, installer)

    def _finish(self, context: bpy.types.Context, installer: engine_install.Installer) -> set[str]:
        from . import operators

        if installer.state == "finished":
            operators.shutdown_backend()  # the next generation starts the engine's Python
            self.report({"INFO"}, installer.status)
            return {"FINISHED"}
        self.report({"ERROR"} if installer.state == "failed" else {"WARNING"}, installer.status)
        return {"CANCELLED"}


def start_engine_install(context: bpy.types.Context) -> engine_install.Installer:
    """Start the install with the preferences' choices (``INSTALL['installer']``); never raises."""
    prefs = _addon_preferences(context)
    root = engine_root()
    plan = engine_install.Plan(root=root, base_python=sys.executable,
                               variant=engine_variant(prefs.engine_variant if prefs else "auto"),
                               wheel_dir=bpy.path.abspath(prefs.engine_wheels) if prefs and prefs.engine_wheels else "")
    installer = engine_install.Installer(plan)
    INSTALL["installer"] = installer
    if plan.wheel_dir and not os.path.isdir(plan.wheel_dir):
        installer.state, installer.status = "failed", f"The Offline Wheels folder '{plan.wheel_dir}' does not exist."
        return installer
    try:
        installer.start()
    except OSError as error:
        installer.state, installer.status = "failed", f"Cannot write to the add-on's folder {root}: {error}."
    return installer


class EXPGEST_OT_cancel_engine_install(bpy.types.Operator):
    """Stop the engine install; nothing is installed"""

    bl_idname = "expgest.cancel_engine_install"
    bl_label = "Cancel Install"

    def execute(self, context: bpy.types.Context) -> set[str]:
        installer = INSTALL.get("installer")
        if installer is not None:
            installer.cancel()
        return {"FINISHED"}


class EXPGEST_OT_remove_engine(bpy.types.Operator):
    """Delete the add-on's ExpGest engine environment (Blender's own Python runs the procedural engine again)"""

    bl_idname = "expgest.remove_engine"
    bl_label = "Remove"

    def execute(self, context: bpy.types.Context) -> set[str]:
        from . import operators

        root = engine_root()
        operators.shutdown_backend()  # its process may run from the environment being deleted
        if root is None or not engine_install.remove(root):
            self.report({"INFO"}, "The ExpGest engine was not installed.")
            return {"CANCELLED"}
        self.report({"INFO"}, "Removed the ExpGest engine.")
        return {"FINISHED"}


class EXPGEST_OT_check_models(bpy.types.Operator):
    """List what the models folder holds and what is missing for each ExpGest mode, with where each file comes
from"""

    bl_idname = "expgest.check_models"
    bl_label = "Check Models Folder"

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = resolve(context)
        MODELS_REPORT[:] = check_models_folder(settings.python, settings.models)
        summary = "; ".join(line for line, icon in MODELS_REPORT if icon in ("CHECKMARK", "ERROR"))
        problems = any(icon == "ERROR" for _, icon in MODELS_REPORT)
        self.report({"WARNING"} if problems else {"INFO"}, summary + (" (details in the preferences)" if problems
                                                                      else ""))
        return {"FINISHED"}


def check_models_folder(python: str, folder: str) -> list[tuple[str, str]]:
    """(line, icon) per finding of ``python -m backend models check FOLDER --json`` run by the backend."""
    import json
    import subprocess

    from . import jobs

    if not folder:
        return [("No models folder is set: the ExpGest engine needs the released weights (see models/README).",
                 "ERROR")]
    try:
        result = subprocess.run([python, "-m", "backend", "models", "check", folder, "--json"],
                                cwd=jobs.bundle_root(), env=jobs.backend_environment(python=python),
                                capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        return [(f"The models check could not run: {error}", "ERROR")]
    try:
        report = json.loads(result.stdout)
    except ValueError:
        last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        return [(last.removeprefix("error: "), "ERROR")]
    return models_report_lines(report)


def models_report_lines(report: dict) -> list[tuple[str, str]]:
    """The panel's lines for one ``models check --json`` report: per mode ready or what is missing, and
    for each missing or invalid file where it comes from."""
    lines: list[tuple[str, str]] = [(f"Folder: {report.get('root', '?')}", "FILE_FOLDER")]
    for mode, entry in report.get("modes", {}).items():
        bad = [item for item in entry.get("items", []) if item.get("status") in ("missing", "invalid")]
        lines.append((f"{mode}: ready" if entry.get("complete") else f"{mode}: {len(bad)} file(s) missing or invalid",
                      "CHECKMARK" if entry.get("complete") else "ERROR"))
        for item in bad:
            alternatives = item.get("alternatives") or []
            where = item.get("path", "?") + (f" (or {', '.join(alternatives)})" if alternatives else "")
            lines.append((f"{item.get('status', '?')}: {where} - {item.get('detail', '')}", "BLANK1"))
    return lines


CLASSES = (EXPGEST_OT_install_engine, EXPGEST_OT_cancel_engine_install, EXPGEST_OT_remove_engine,
           EXPGEST_OT_check_models)
