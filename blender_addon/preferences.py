"""Add-on preferences: the backend's Python interpreter, the weights folder, the compute device.

Environment variables override the stored values (DESIGN.md section 6): ``EXPGEST_BACKEND_PYTHON`` and
``EXPGEST_MODELS``. Read them only through ``resolve()`` (HOUSE_STYLE 18).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import bpy

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
    smplx_dir: bpy.props.StringProperty(
        name="SMPL-X Model Folder", subtype="DIR_PATH", default="",
        description="Optional: your own SMPL-X model files, for characters with the real SMPL-X body (needs the "
                    "smplx package in the backend); empty: the built-in skeleton and the wooden mannequin")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        resolved = resolve(context)
        row = layout.row()
        row.enabled = not os.environ.get(ENV_PYTHON)
        row.prop(self, "backend_python")
        if os.environ.get(ENV_PYTHON):
            layout.label(text=f"Using {ENV_PYTHON}={resolved.python}", icon="INFO")
        row = layout.row()
        row.enabled = not os.environ.get(ENV_MODELS)
        row.prop(self, "models_dir")
        if os.environ.get(ENV_MODELS):
            layout.label(text=f"Using {ENV_MODELS}={resolved.models}", icon="INFO")
        layout.prop(self, "device")
        layout.prop(self, "smplx_dir")
        problem = quick_python_problem(resolved.python)
        if problem:
            layout.label(text=problem, icon="ERROR")
        layout.operator("expgest.check_backend", icon="FILE_REFRESH")


@dataclass(frozen=True)
class Resolved:
    """Effective settings: ``python`` and ``models`` after the environment overrides."""

    python: str
    python_from_env: bool
    models: str
    device: str
    smplx_dir: str


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
    return Resolved(python=interpreter_in(env_python or stored_python), python_from_env=bool(env_python),
                    models=env_models or stored_models, device=prefs.device if prefs else "auto",
                    smplx_dir=_path(prefs.smplx_dir) if prefs and prefs.smplx_dir else "")


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
