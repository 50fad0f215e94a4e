"""The managed ExpGest engine environment: one click installs PyTorch and its packages beside the add-on.

Blender alone runs the procedural engine (Blender's Python, its numpy and the extension's bundled scipy and
soundfile wheels). The diffusion engine needs PyTorch, transformers and safetensors, far too large to bundle,
so **Install ExpGest Engine** creates a virtual environment from Blender's own Python in the extension's user
folder and pip-installs them there; the backend then runs with that environment's interpreter.

The install is all-or-nothing: it is built in ``engine.partial`` next to the final folder and renamed to
``engine`` only when every step succeeded, so Cancel, a failure or a killed Blender never leaves a half
environment where the add-on would use it. pip's output goes to ``install.log`` in the same folder (the
preferences open it). This module has no ``bpy``: the operator in ``preferences.py`` polls ``Installer``
from a timer, so the UI never freezes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ENGINE_DIR = "engine"
PARTIAL_DIR = "engine.partial"
LOG_NAME = "install.log"
# What the backend needs beyond the Python standard library, for both engines (numpy is installed anew: the
# environment does not see Blender's site-packages).
BASE_PACKAGES = ("numpy>=1.26", "scipy>=1.11", "soundfile>=0.12")
ENGINE_PACKAGES = ("transformers>=4.40", "safetensors>=0.4")
TORCH_INDEX = {  # PyTorch's own package index per build; macOS and "default" use the normal index
    "cpu": "https://download.pytorch.org/whl/cpu",
    "cuda": "https://download.pytorch.org/whl/cu128",
}
# Shown before installing (approximate, measured from the wheels of PyTorch 2.x for CPython 3.11).
SIZES = {
    "cpu": "about 250 MB to download, 1.2 GB on disk",
    "cuda": "about 3.5 GB to download, 7 GB on disk",
    "default": "about 300 MB to download (macOS), 1.3 GB on disk",
}
LICENCE_NOTE = ("PyTorch (BSD), transformers and safetensors (Apache 2.0) are installed from the package "
                "indexes. The ExpGest checkpoints you download yourself carry no licence from their authors; "
                "SMPL-X model files are for non-commercial use only.")


def environment_python(folder: str | os.PathLike[str]) -> Path:
    """The interpreter inside a virtual environment folder (POSIX ``bin/python``, Windows ``Scripts``)."""
    folder = Path(folder)
    if sys.platform == "win32":
        return folder / "Scripts" / "python.exe"
    return folder / "bin" / "python"


def installed_python(root: str | os.PathLike[str]) -> Path | None:
    """The engine environment's interpreter under ``root`` (the extension's user folder), if installed."""
    python = environment_python(Path(root) / ENGINE_DIR)
    return python if python.is_file() else None


def default_variant() -> str:
    """``cuda`` when an NVIDIA driver is present, ``default`` on macOS (PyPI's build has Metal), else ``cpu``."""
    if sys.platform == "darwin":
        return "default"
    return "cuda" if shutil.which("nvidia-smi") else "cpu"


@dataclass
class Plan:
    """One install: where, which PyTorch build, and from which source.

    Attributes:
        root: the extension's user folder; the environment ends up in ``root/engine``.
        base_python: the interpreter that creates the environment (Blender's own Python).
        variant: ``cpu`` | ``cuda`` | ``default`` (PyPI's build).
        wheel_dir: a folder of wheels to install from without network (a studio's offline mirror), or "".
    """

    root: Path
    base_python: str
    variant: str = "cpu"
    wheel_dir: str = ""

    def steps(self) -> list[tuple[str, list[str]]]:
        """(label, command) per step, run in order; the commands use the partial environment."""
        partial = self.root / PARTIAL_DIR
        python = str(environment_python(partial))
        pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar",
               "off"]
        if self.wheel_dir:
            source = ["--no-index", "--find-links", self.wheel_dir]
            torch_source = source
        else:
            source = []
            index = TORCH_INDEX.get(self.variant)
            torch_source = ["--index-url", index, "--extra-index-url", "https://pypi.org/simple"] if index else []
        return [
            ("Creating the environment", [self.base_python, "-m", "venv", str(partial)]),
            ("Installing PyTorch", [*pip, *torch_source, "torch"]),
            ("Installing transformers, scipy and soundfile", [*pip, *source, *BASE_PACKAGES, *ENGINE_PACKAGES]),
            ("Checking the engine", [python, "-c", "import torch, transformers, safetensors, scipy, soundfile; "
                                     "print('torch', torch.__version__)"]),
        ]


@dataclass
class Installer:
    """Runs a ``Plan`` step by step without blocking: call ``poll()`` from a timer until ``done``.

    Attributes:
        state: ``running`` | ``finished`` | ``failed`` | ``cancelled``.
        status: one line for the UI (the step and pip's latest action).
        error: what went wrong, in words, when ``failed``.
    """

    plan: Plan
    state: str = "running"
    status: str = ""
    error: str = ""
    step: int = -1
    _process: subprocess.Popen | None = field(default=None, repr=False)
    _log: object | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.plan.root / LOG_NAME

    @property
    def done(self) -> bool:
        return self.state != "running"

    def start(self) -> Installer:
        """Prepare the folders and start the first step.

        Raises:
            OSError: the user folder cannot be written (reported by the caller; nothing was changed).
        """
        self.plan.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.plan.root / PARTIAL_DIR, ignore_errors=True)  # a crashed earlier install
        self._log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in _finish
        self._next()
        return self

    def poll(self) -> str:
        """Advance: start the next step when one finishes. Returns ``state``."""
        if self.done or self._process is None:
            return self.state
        self.status = f"{self.plan.steps()[self.step][0]}: {self._last_log_line()}".rstrip(": ")
        code = self._process.poll()
        if code is None:
            return self.state
        if code != 0:
            self._fail(self._explain_failure())
            return self.state
        self._next()
        return self.state

    def cancel(self) -> None:
        """Stop the running step and delete the partial environment (the installed one, if any, is kept)."""
        if self.done:
            return
        self._stop_process()
        self.state = "cancelled"
        self.status = "Cancelled; nothing was installed."
        self._finish(success=False)

    # -- internals -----------------------------------------------------------------------------------

    def _next(self) -> None:
        steps = self.plan.steps()
        self.step += 1
        if self.step >= len(steps):
            self._install()
            return
        label, command = steps[self.step]
        self.status = label
        assert self._log is not None
        self._log.write(f"\n$ {' '.join(command)}\n")
        self._log.flush()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP",
                                                                 "PIP_TARGET", "PIP_PREFIX")}
        try:
            self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, env=env, cwd=str(self.plan.root),
                                             start_new_session=(os.name != "nt"))
        except OSError as error:
            self._fail(f"{label} could not start: {error}.")

    def _install(self) -> None:
        final = self.plan.root / ENGINE_DIR
        partial = self.plan.root / PARTIAL_DIR
        try:
            if final.exists():
                shutil.rmtree(final)
            partial.rename(final)
        except OSError as error:
            self._fail(f"Could not move the new environment into place: {error}.")
            return
        self.state = "finished"
        self.status = "The ExpGest engine is installed."
        self._finish(success=True)

    def _fail(self, message: str) -> None:
        self._stop_process()
        self.state = "failed"
        self.error = message
        self.status = message
        self._finish(success=False)

    def _finish(self, success: bool) -> None:
        if not success:
            shutil.rmtree(self.plan.root / PARTIAL_DIR, ignore_errors=True)
        if self._log is not None:
            self._log.write(f"\n[{self.state}] {self.status}\n")
            self._log.close()
            self._log = None

    def _stop_process(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            if os.name != "nt":
                os.killpg(process.pid, signal.SIGTERM)
            else:
                process.terminate()
            process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait(timeout=10)

    def _last_log_line(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 2048))
                lines = [line.strip() for line in log.read().decode("utf-8", "replace").splitlines() if line.strip()]
        except OSError:
            return ""
        return lines[-1][:90] if lines else ""

    def _explain_failure(self) -> str:
        label = self.plan.steps()[self.step][0]
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        lowered = text.lower()
        if "no space left" in lowered:
            why = "the disk is full"
        elif any(s in lowered for s in ("failed to establish a new connection", "temporary failure in name",
                                        "network is unreachable", "connection refused", "read timed out")):
            why = ("no network connection to the package index; connect, or choose a folder of wheels "
                   "(Offline Wheels) in the preferences")
        elif "no matching distribution" in lowered or "could not find a version" in lowered:
            why = "a required package was not found" + (" in the wheels folder" if self.plan.wheel_dir else "")
        elif "is not a supported wheel" in lowered or "badzipfile" in lowered or "invalid wheel" in lowered:
            why = "a wheel file is broken or for another platform"
        elif "no module named venv" in lowered or "ensurepip" in lowered:
            why = "this Python cannot create virtual environments"
        else:
            lines = [line for line in text.splitlines() if line.strip()]
            why = lines[-1].strip()[:160] if lines else "see the log"
        return f"{label} failed: {why}. Nothing was installed; the log is {self.log_path}."


def remove(root: str | os.PathLike[str]) -> bool:
    """Delete the installed engine environment (and any partial one). Returns whether one was there."""
    root = Path(root)
    existed = (root / ENGINE_DIR).exists()
    for name in (ENGINE_DIR, PARTIAL_DIR):
        shutil.rmtree(root / name, ignore_errors=True)
    return existed
