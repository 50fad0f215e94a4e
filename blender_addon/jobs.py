"""Running generations on the backend process without blocking Blender: no bpy (HOUSE_STYLE 6).

Two layers:

* ``Backend`` (a transport) starts the backend process and turns one request into a ``BackendJob``.
  ``ServerBackend`` keeps one ``python -m backend serve`` process for many requests (models stay loaded)
  through the bundled ``backend.client.BackendClient``. Another transport (e.g. one CLI process per
  request) only has to implement the two small protocols below.
* ``GenerationRun`` runs a list of planned generations one after another on one backend and is advanced by
  ``step()`` from Blender's main thread (a modal timer, or a loop in ``execute()``); ``step()`` reads what
  the backend wrote so far without blocking, and no Python thread is started (``backend.client`` says why
  threads are unsafe in Blender). Nothing here touches the scene: the caller applies the finished results,
  so a crash, an error or a cancel leaves the scene as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .backend import __file__ as _backend_init
from .backend import timeouts
from .backend.errors import ExpGestError, ServerExitedError, ServerNotStartedError

ProgressCallback = Callable[[str, float, str], None]

START_TIMEOUT_S = 120.0  # the handshake of a fresh backend (imports, device discovery)
CHARACTER_TIMEOUT_S = 300.0  # building a character with its skinned body (seconds, even on a slow disk)


class BackendJob(Protocol):
    """One request in flight."""

    def done(self) -> bool: ...

    def result(self) -> dict[str, Any]:
        """The backend's result (``{"output": path, "frames", "fps", ...}``); raises the backend's error
        (``backend.errors``: its class and code, rebuilt by the client), never a wrapper."""
        ...

    def cancel(self) -> None: ...


class Backend(Protocol):
    """A backend process (or a way to start one per request)."""

    @property
    def alive(self) -> bool: ...

    def start(self, timeout: float) -> dict[str, Any]:
        """Start and wait for the handshake (blocking)."""
        ...

    def begin_start(self, timeout: float) -> None:
        """Start without waiting; then call ``started()`` from a timer until it is True."""
        ...

    def started(self) -> bool:
        """True once the handshake of ``begin_start`` answered; raises its ``ExpGestError`` if the start failed."""
        ...

    def submit(self, request: dict[str, Any], on_progress: ProgressCallback) -> BackendJob: ...

    def submit_batch(self, requests: list[dict[str, Any]], clips_per_forward: int | str,
                     on_progress: ProgressCallback) -> BackendJob:
        """Several generations as one request; the job's ``result()`` is a list with, per request, its result
        dict or its ``ExpGestError``."""
        ...

    def offers(self, method: str) -> bool:
        """Whether the started backend serves protocol method ``method``."""
        ...

    def poll(self) -> None: ...

    def character(self, params: dict[str, Any], timeout: float) -> dict[str, Any]: ...

    def shutdown(self, timeout: float = timeouts.SHUTDOWN_WAIT_S) -> None: ...


def bundle_root() -> Path:
    """The folder that holds the bundled ``backend`` (and ``models``) packages: the backend's working dir."""
    return Path(_backend_init).resolve().parent.parent


def extension_site_packages() -> list[str]:
    """Where Blender installed extensions' bundled wheels (scipy, soundfile for this one).

    Blender 4.2+ extracts the wheels an extension's manifest declares into
    ``<extensions>/.local/lib/pythonX.Y/site-packages`` and appends that folder to ``sys.path`` when it
    enables the extension; we find it there (no bpy, so this module stays testable outside Blender).
    """
    tail = os.path.join(".local", "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    found = []
    for entry in sys.path:
        if entry and os.path.normpath(entry).endswith(tail) and os.path.isdir(entry) and entry not in found:
            found.append(entry)
    return found


def is_own_python(python: str) -> bool:
    """Whether ``python`` is the interpreter running this code (Blender's own Python inside Blender)."""
    try:
        return bool(python) and os.path.samefile(python, sys.executable)
    except OSError:
        return False


def backend_environment(extra: dict[str, str] | None = None, *, python: str = "") -> dict[str, str]:
    """The backend's environment: ours without Blender's Python settings, the bundle first on PYTHONPATH.

    When the backend runs with Blender's own Python, the extension's bundled wheels follow the bundle (they
    are built for that Python only, so another interpreter never sees them).
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP")}
    paths = [str(bundle_root())]
    if is_own_python(python):
        paths += extension_site_packages()
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


_CHECK_SCRIPT = (
    "import importlib.util as u\n"
    "import backend.server, backend.pipeline, backend.audio, backend.engines.procedural\n"
    "print('torch-ok' if u.find_spec('torch') and u.find_spec('transformers') else 'no-torch')\n"
)


def probe_interpreter(python: str, timeout: float = 20.0) -> tuple[str | None, bool]:
    """Whether ``python`` can run the bundled backend, and whether it has the expgest engine's requirements.

    Imports what a generation with the procedural engine imports (the server, pipeline, audio and engine
    modules: numpy, scipy, soundfile) from the bundle, in about a second.

    Returns:
        (None if it can run the backend, else a sentence saying what to fix; True if torch and
        transformers are installed too).
    """
    if not python:
        return ("No backend Python is set. Choose the Python interpreter of the backend's environment in the "
                "add-on preferences, or set EXPGEST_BACKEND_PYTHON."), False
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return (f"The backend Python '{python}' does not exist or is not executable; choose another in the "
                "preferences."), False
    try:
        result = subprocess.run([python, "-c", _CHECK_SCRIPT], cwd=bundle_root(),
                                env=backend_environment(python=python), capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        return (f"The backend Python '{python}' could not be started ({error}); choose another in the "
                "preferences."), False
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        return (f"The backend Python '{python}' cannot run the backend ({last}). Install the backend's "
                f"requirements into it, or choose another interpreter in the preferences."), False
    return None, "torch-ok" in result.stdout


def check_interpreter(python: str, timeout: float = 20.0) -> str | None:
    """``probe_interpreter``'s first half: None if ``python`` can run the backend, else what to fix."""
    return probe_interpreter(python, timeout)[0]


# ---------------------------------------------------------------------------------------------------
# The transport: one long-lived server through the bundled client.


class _ServerJob:
    def __init__(self, pending: Any) -> None:
        self._pending = pending

    def done(self) -> bool:
        return bool(self._pending.done())

    def result(self) -> dict[str, Any]:
        return self._pending.result(0)  # an error arrives as its own class (backend.errors), code included

    def cancel(self) -> None:
        self._pending.cancel()


class _ServerBatchJob(_ServerJob):
    def __init__(self, pending: Any) -> None:
        super().__init__(pending)
        self.forward_batch_sizes: list[int] = []  # clips in each batched forward, once the result is read

    def result(self) -> list[dict[str, Any] | ExpGestError]:  # type: ignore[override]
        from .backend.client import batch_outcomes

        result = self._pending.result(0)
        self.forward_batch_sizes = list(result.get("forward_batch_sizes", []))
        return batch_outcomes(result)


class ServerBackend:
    """``python -m backend serve`` through ``backend.client.BackendClient`` (one process, many requests)."""

    def __init__(self, python: str) -> None:
        from .backend import client

        # No reader threads: the pipes are read on Blender's main thread, inside poll() (BackendClient's threading
        # rules say why a Python thread is unsafe in Blender 3.x).
        self._client = client.BackendClient(python, env=backend_environment(python=python), cwd=str(bundle_root()),
                                            threads=False)
        self._handshake: client.PendingRequest | None = None
        self.python = python

    @property
    def alive(self) -> bool:
        return bool(self._client.alive)

    @property
    def pid(self) -> int | None:
        return self._client.pid

    def start(self, timeout: float) -> dict[str, Any]:
        with self._start_errors():
            return self._client.start(timeout)

    def begin_start(self, timeout: float) -> None:
        with self._start_errors():
            self._handshake = self._client.begin_start(timeout)

    def started(self) -> bool:
        assert self._handshake is not None, "begin_start() first"
        with self._start_errors():
            self._client.poll()
            return self._client.handshake_result(self._handshake, block=False) is not None

    @contextlib.contextmanager
    def _start_errors(self) -> Iterator[None]:
        """A failed start as one sentence for the panel: which Python, why, the log's last line, what to do."""
        try:
            yield
        except ExpGestError as error:
            log = error.stderr.strip()
            last = f" ({log.splitlines()[-1]})" if log else ""
            raise error.with_message(f"The backend did not start with Python '{self.python}': {error.message}{last} "
                                     "Choose the backend's Python in the add-on preferences (Check Backend tests "
                                     "it).") from error
        except OSError as error:
            raise ServerNotStartedError(f"The backend Python '{self.python}' could not be started ({error}).") \
                from error

    def submit(self, request: dict[str, Any], on_progress: ProgressCallback) -> BackendJob:
        pending = self._client.generate(request, on_progress=on_progress)
        return _ServerJob(pending)

    def submit_batch(self, requests: list[dict[str, Any]], clips_per_forward: int | str,
                     on_progress: ProgressCallback) -> BackendJob:
        pending = self._client.generate_batch(requests, clips_per_forward, on_progress=on_progress)
        return _ServerBatchJob(pending)

    def offers(self, method: str) -> bool:
        return method in (self._client.server_info or {}).get("methods", ())

    def poll(self) -> None:
        self._client.poll()

    def character(self, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Build a character with the server's ``character`` method and wait for it.

        Raises:
            ExpGestError: the backend's error, rebuilt with its class and code (``backend.errors``).
        """
        return self._client.character(params, timeout)

    def shutdown(self, timeout: float = timeouts.SHUTDOWN_WAIT_S) -> None:
        self._client.shutdown(timeout)


def make_backend(python: str) -> Backend:
    """A fresh (not yet started) backend process for ``python``."""
    return ServerBackend(python)


# ---------------------------------------------------------------------------------------------------
# A run: several generations on one backend, one after another or several per batched request.

MAX_BATCH_PLANS = 32  # characters per generate_batch request (the server takes up to 64)


@dataclass
class PlannedGeneration:
    """One character's generation, fully gathered from the scene on the main thread.

    Attributes:
        key: an identifier the caller uses to apply the result (the armature object's name).
        label: what progress and reports call it ("SMPLX · line_01").
        request: ``GenerationRequest.to_dict()``.
        temp_files: files to delete when the run is over (unpacked sounds, the result file).
    """

    key: str
    label: str
    request: dict[str, Any]
    temp_files: tuple[str, ...] = ()


@dataclass
class Outcome:
    """What happened to one planned generation: ``result`` on success, else ``error`` (the backend's error,
    its class and code intact; ``error.stderr`` holds the backend's log tail when the process failed)."""

    plan: PlannedGeneration
    result: dict[str, Any] | None = None
    error: ExpGestError | None = None


@dataclass
class GenerationRun:
    """Runs ``plans`` in order on the backend made by ``backend_factory``; advance it with ``step()``.

    ``backend`` may be passed in (a warm process kept between runs); a dead one is replaced by a fresh one
    from ``backend_factory``, so one crashing character does not fail the ones after it.

    Consecutive ExpGest plans go to the backend as one ``generate_batch`` request (window k of up to
    ``clips_per_forward`` characters denoised in one batched forward) unless ``clips_per_forward`` is 1; the
    procedural engine gains nothing from it and keeps one request per character. A backend that dies during a
    batch costs no character: the batch's plans are run again one at a time on a fresh backend.
    """

    plans: list[PlannedGeneration]
    backend_factory: Callable[[], Backend]
    backend: Backend | None = None
    start_timeout: float = START_TIMEOUT_S
    outcomes: list[Outcome] = field(default_factory=list)
    stage: str = "starting"
    message: str = "Starting the backend"
    fraction_current: float = 0.0
    cancelled: bool = False
    started_at: float = field(default_factory=time.monotonic)
    clips_per_forward: int | str = "auto"
    batches: int = 0  # generate_batch requests sent
    forward_batch_sizes: list[int] = field(default_factory=list)  # clips in each batched forward the backend ran
    _job: BackendJob | None = None
    _index: int = 0
    _span: int = 1  # plans covered by the job in flight
    _solo_until: int = 0  # plans before this index run one per request (their batch's backend died)
    _starting: bool = False  # a fresh backend's handshake is in flight

    @property
    def finished(self) -> bool:
        """True once every plan has an outcome (or the run was cancelled and its job ended)."""
        idle = self._job is None and not self._starting
        return idle and (self.cancelled or self._index >= len(self.plans))

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1]."""
        if not self.plans:
            return 1.0
        return min(1.0, (self._index + self._span * max(0.0, self.fraction_current)) / len(self.plans))

    @property
    def current_label(self) -> str:
        """The label of the generation in flight ('' when none), with its place in a batch ("2/3 ...")."""
        if self._index >= len(self.plans):
            return ""
        label = self.plans[self._index].label
        if self._job is not None and self._span > 1:
            last = self._index + self._span
            return f"{self._index + 1}-{last}/{len(self.plans)} together: {label} ... {self.plans[last - 1].label}"
        return f"{self._index + 1}/{len(self.plans)} {label}" if len(self.plans) > 1 else label

    def cancel(self) -> None:
        """Stop after the current request ends (the backend stops it between steps)."""
        self.cancelled = True
        self.message = "Cancelling"
        if self._job is not None:
            self._job.cancel()

    def _on_progress(self, stage: str, done: float, message: str) -> None:
        self.stage = stage or self.stage
        if done is not None and done >= 0:
            self.fraction_current = float(done)
        self.message = message or stage or self.message

    def _backend_ready(self) -> bool:
        """Start a backend when there is none (or it died); True once one is ready.

        Starting waits for the process's handshake (imports, model set-up), so it is polled from ``step()``
        and never waited for on the main thread. A start failure raises its ``ExpGestError`` here.
        """
        if self._starting:
            assert self.backend is not None
            try:
                ready = self.backend.started()
            except ExpGestError:
                self._starting = False
                raise
            self._starting = not ready
            return ready
        if self.backend is not None and self.backend.alive:
            return True
        if self.backend is not None:
            self.backend.shutdown(timeouts.QUICK_STOP_S)
        self.backend = self.backend_factory()
        self.message = "Starting the backend"
        self.backend.begin_start(self.start_timeout)
        self._starting = True
        return False

    def _batch_span(self) -> int:
        """How many plans from ``_index`` on go into one ``generate_batch`` (1: a plain ``generate``)."""
        if self.clips_per_forward == 1 or self._index < self._solo_until or self.backend is None \
                or not self.backend.offers("generate_batch"):
            return 1
        span = 0
        while (self._index + span < len(self.plans) and span < MAX_BATCH_PLANS
               and self.plans[self._index + span].request.get("engine", "procedural") != "procedural"):
            span += 1
        return span if span > 1 else 1

    def _submit(self) -> None:
        assert self.backend is not None
        self.fraction_current = 0.0
        self._span = self._batch_span()
        plans = self.plans[self._index:self._index + self._span]
        if self._span > 1:
            self.message = f"Generating {len(plans)} characters together"
            self._job = self.backend.submit_batch([plan.request for plan in plans], self.clips_per_forward,
                                                  self._on_progress)
            self.batches += 1
        else:
            self.message = f"Generating {plans[0].label}"
            self._job = self.backend.submit(plans[0].request, self._on_progress)

    def step(self) -> bool:
        """Advance the run without blocking; returns ``finished``."""
        if self._job is None:
            if self.cancelled or self._index >= len(self.plans):
                if self._starting:  # a cancel while starting: let the handshake end, the backend stays warm
                    try:
                        self._backend_ready()
                    except ExpGestError:
                        self.backend = None
                return not self._starting
            try:
                if not self._backend_ready():
                    return False
                self._submit()
            except ExpGestError as error:
                self.backend = None if self.backend is not None and not self.backend.alive else self.backend
                self._span = 1
                self._record(Outcome(self.plans[self._index], error=error))
            return self.finished
        assert self.backend is not None
        self.backend.poll()
        if not self._job.done():
            return False
        plans = self.plans[self._index:self._index + self._span]
        try:
            result = self._job.result()
            self.forward_batch_sizes += getattr(self._job, "forward_batch_sizes", [])
            outcomes = ([Outcome(plan, result=item) if isinstance(item, dict) else Outcome(plan, error=item)
                         for plan, item in zip(plans, result, strict=True)] if self._span > 1
                        else [Outcome(plans[0], result=result)])
        except ServerExitedError as error:
            if self._span > 1 and not self.cancelled:   # run them again one at a time: a crash costs one character
                self._job, self._solo_until, self._span = None, self._index + self._span, 1
                return False
            outcomes = [Outcome(plan, error=error) for plan in plans]
        except ExpGestError as error:
            outcomes = [Outcome(plan, error=error) for plan in plans]
        self._job = None
        for outcome in outcomes:
            self._record(outcome)
        self._span = 1
        return self.finished

    def _record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self._index += 1
        self.fraction_current = 0.0

    def run_blocking(self, poll_interval: float = 0.02) -> None:
        """Drive ``step()`` until finished (scripts, tests and background mode)."""
        while not self.step():
            time.sleep(poll_interval)

    def cleanup(self) -> None:
        """Delete the plans' temporary files and folders."""
        for plan in self.plans:
            for path in plan.temp_files:
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                elif os.path.exists(path):
                    os.unlink(path)
