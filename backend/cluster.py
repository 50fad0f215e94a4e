"""Batch jobs on a Ray cluster: ``python -m backend batch SOURCE --out DIR --ray [ADDRESS]``.

The same job as ``backend.batch.run_batch``: the same items, the same settings record (``BatchLedger``), the
same summary, byte-identical results for the same settings and seeds. Only where the lines run differs: on
Ray actors instead of one backend process. Ray is optional (``pip install 'expgest-blender[cluster]'``); this
module imports it only when a batch runs.

Design:

1. **One actor per worker.** ``LineWorker`` holds an ``EngineCache`` for its whole life, so each worker loads
   the engine (the model weights) once, not once per line. An actor reserves ``cpus_per_worker`` CPUs and
   ``gpus_per_worker`` GPUs (a fraction shares a GPU between actors); ``device: auto`` then picks the GPU Ray
   assigned to it.
2. **The driver ships bytes; the workers share no storage.** The driver reads each line's audio and sends the
   bytes with the task; the worker runs ``backend.pipeline.run_generation`` on a private temporary copy and
   returns the result file's bytes; the driver writes them into the output folder atomically and records them
   in the settings record. Why this and not a shared path: render nodes rarely mount the same paths; a worker
   killed mid-line cannot leave anything in the output folder, because it never writes there; and the output
   folder has exactly one writer, so the settings record needs no locking. The cost is moving the audio and
   the result over the network: a 10 s line is about 320 KB of 16-bit audio and 60 KB of motion, small next to
   the seconds (CPU) or tenths of seconds (GPU) of generating it.
3. **Scheduling.** Each ready worker holds at most ``_DEPTH`` lines: one running and one queued behind it, so
   a worker never idles waiting for the driver between lines, and a slow worker cannot hoard lines.
4. **A dead worker.** When a worker dies (killed, out of memory, a crash in a native library) Ray fails its
   lines with ``RayActorError``. The line it was running counts one attempt and goes back to the front of the
   queue; lines only queued behind it go back uncounted; a new worker replaces it. A line that has taken down
   ``max_retries + 1`` workers is reported as failed instead of being tried forever.
5. **Errors a user can act on** (unreadable audio, an invalid field) come back as results, not exceptions, and
   are not retried: they would fail the same way on any worker.
6. **Ctrl-C** stops dispatching, kills the batch's actors and returns an interrupted summary. Results that had
   not reached the driver are dropped; nothing partial is written (every write is atomic, bracketed by the
   settings record's ``begin``/``commit``). Running the same command again finishes the rest.
7. **The code travels with the job.** When the driver connects to Ray itself, it uploads ``backend/`` and
   ``models/`` as the job's ``py_modules``, so every worker runs exactly the driver's code; the driver's
   ``EXPGEST_*`` environment variables are set on the workers. The workers' Python needs the backend's
   dependencies (numpy, scipy, soundfile; torch and transformers for the expgest engine) and the weights
   folder at the same path as on the driver (docs/cluster.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .batch import BatchItem, BatchLedger, BatchSummary, ProgressBar, triage
from .errors import ExpGestError, OutputError
from .fileio import write_atomic

RAY_MISSING = ("--ray needs Ray, which is not installed in this Python; install it with `pip install "
               "'expgest-blender[cluster]'` (or `pip install 'ray>=2.9'`), or run the batch without --ray.")
_DEPTH = 2  # lines held by one worker: the running one and the next
_SCRATCH = "expgest-ray"  # folder under each worker's temporary directory


class ClusterError(ExpGestError):
    """The batch cannot run on Ray: Ray is missing, the cluster cannot be reached, or no worker starts."""


def require_ray() -> Any:
    """Import Ray.

    Returns:
        The ``ray`` module.

    Raises:
        ClusterError: Ray is not installed; the message says how to install it.
    """
    try:
        import ray
    except ImportError:
        raise ClusterError(RAY_MISSING) from None
    return ray


@dataclass(frozen=True)
class ClusterOptions:
    """How to run a batch on Ray.

    Attributes:
        address: ``local`` (start a single-machine cluster for this batch), ``auto`` (the cluster this machine
            joined with ``ray start``), or ``HOST:PORT`` / ``ray://HOST:PORT``. Ignored when this process is
            already connected to Ray (``ray.init`` was called before).
        workers: number of actors; None = as many as the cluster's CPUs (or GPUs) fit, at most one per line.
        cpus_per_worker: CPUs each actor reserves.
        gpus_per_worker: GPUs each actor reserves (fractions share a GPU); None = 1 when the cluster has GPUs,
            else 0.
        max_retries: how many times a line whose worker died is run again on another worker.
        start_timeout: seconds to wait for the first worker to be ready.
    """

    address: str = "local"
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    max_retries: int = 2
    start_timeout: float = 120.0


# ---------------------------------------------------------------------------------------------------------------
# The worker (runs inside a Ray actor process)


def _sweep_scratch(base: Path) -> None:
    """Remove scratch folders of worker processes that no longer run (a worker killed mid-line leaves one)."""
    for entry in base.iterdir():
        pid = entry.name.split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except (PermissionError, OverflowError):
            continue


class LineWorker:
    """A Ray actor's body: generates lines with an engine loaded once for the actor's life.

    Never raises for a line: ``generate`` returns ``{"ok": False, "error": message}`` for every failure, so the
    driver tells a failed line (reported) from a dead worker (retried).
    """

    def __init__(self) -> None:
        from .pipeline import EngineCache

        self.cache = EngineCache()
        base = Path(tempfile.gettempdir()) / _SCRATCH
        base.mkdir(parents=True, exist_ok=True)
        if os.name == "posix":
            _sweep_scratch(base)
        self.scratch = base

    def ready(self) -> dict[str, Any]:
        """Where this worker runs: ``{"pid", "host", "gpus"}`` (Ray's GPU ids assigned to it)."""
        import ray

        return {"pid": os.getpid(), "host": socket.gethostname(), "gpus": [str(g) for g in ray.get_gpu_ids()]}

    def generate(self, params: dict[str, Any], audio_name: str, audio_bytes: bytes) -> dict[str, Any]:
        """Generate one line.

        Args:
            params: the line's ``generate`` params (DESIGN.md section 3); its paths are the driver's.
            audio_name: the audio file's name (its suffix tells the decoder the format).
            audio_bytes: the audio file's content.

        Returns:
            ``{"ok": True, "data": bytes of the result file, "frames", "fps", "warnings", "timings", "pid"}``, or
            ``{"ok": False, "error": one message for the user}``.
        """
        folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=self.scratch))  # swept if this process dies
        audio = params.get("audio")
        original = str(audio.get("path") if isinstance(audio, dict) else audio)
        local_audio = folder / Path(audio_name).name

        def restore_paths(message: str) -> str:  # the user knows the driver's path, not the worker's copy
            return message.replace(str(local_audio), original)

        try:
            result = self._generate(params, local_audio, audio_bytes, folder)
            result["warnings"] = [restore_paths(w) for w in result["warnings"]]
            return result
        except ExpGestError as error:
            return {"ok": False, "error": restore_paths(error.message)}
        except Exception as error:  # a bug: report it like the server does, the worker lives on
            return {"ok": False, "error": f"Internal error in generate: {type(error).__name__}: {error}. This is a "
                                          "bug in the backend; please report it with the worker's log."}
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _generate(self, params: dict[str, Any], local_audio: Path, audio_bytes: bytes,
                  folder: Path) -> dict[str, Any]:
        from .pipeline import run_generation
        from .request import GenerationRequest

        local_audio.write_bytes(audio_bytes)
        audio = params.get("audio")
        suffix = Path(str(params.get("output", "result.npz"))).suffix
        local_source = {**audio, "path": str(local_audio)} if isinstance(audio, dict) else str(local_audio)
        local = {**params, "audio": local_source, "output": str(folder / f"result{suffix}")}
        from .engines.plugins import SingleEngineCache, split_engine

        local, plugin = split_engine(local)
        cache = SingleEngineCache(plugin) if plugin is not None else self.cache
        request = GenerationRequest.from_dict(local)
        result = run_generation(request, cache=cache)
        return {"ok": True, "data": Path(result.output).read_bytes(), "frames": result.frames, "fps": result.fps,
                "warnings": list(result.warnings), "timings": result.timings, "pid": os.getpid()}


# ---------------------------------------------------------------------------------------------------------------
# The driver


class ClusterProgress(ProgressBar):
    """One aggregated line: lines done of all, failures, workers and the time left (ETA)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        super().__init__(total, stream or sys.stderr)  # looked up now: sys.stderr may have been replaced
        self.workers = 0
        self.to_run = 0
        self.ran = 0
        self._started: float | None = None

    def start(self, to_run: int) -> None:
        """Start the clock for ``to_run`` lines that will be generated (skipped ones do not count)."""
        self.to_run = to_run
        self._started = time.monotonic()

    def eta(self) -> str:
        """Time left, from the rate of the lines generated so far ("" before the first one)."""
        if self._started is None or self.ran == 0:
            return ""
        left = (time.monotonic() - self._started) / self.ran * max(0, self.to_run - self.ran)
        minutes, seconds = divmod(int(round(left)), 60)
        hours, minutes = divmod(minutes, 60)
        return f"ETA {hours}h{minutes:02d}m" if hours else f"ETA {minutes}:{seconds:02d}"

    def status(self) -> str:
        """``done/total, N failed, W workers, ETA``."""
        parts = [f"{self.finished}/{self.total} done"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.workers:
            parts.append(f"{self.workers} worker{'s' if self.workers != 1 else ''}")
        if self.eta():
            parts.append(self.eta())
        return ", ".join(parts)

    def refresh(self) -> None:
        """Redraw the line on a terminal (at most 4 times a second)."""
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._last_draw < 0.25:
            return
        self._last_draw = now
        filled = int(round(30 * self.finished / max(1, self.total)))
        self.stream.write(f"\r\033[K[{'#' * filled}{'-' * (30 - filled)}] {self.status()}"[:150 + 8])
        self.stream.flush()

    def line_done(self, label: str, outcome: str) -> None:
        """Count a line the workers finished (written or failed) and report it with the status."""
        self.ran += 1
        self.item_done(label, outcome)

    def item_done(self, label: str, outcome: str) -> None:
        """Count a finished item and print it with the aggregated status, then redraw the line."""
        super().item_done(label, outcome)
        self._last_draw = 0.0
        self.refresh()

    def _status_suffix(self) -> str:
        return f" | {self.status()}"


@dataclass
class _Line:
    item: BatchItem
    fingerprint: str
    attempts: int = 0  # workers that died while running it


@dataclass
class _Worker:
    actor: Any
    ready_ref: Any
    ready: bool = False
    dead: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    queue: list[Any] = field(default_factory=list)  # refs of its lines, in submission (= execution) order


def _forwarded_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith("EXPGEST_")}


def _connect(ray: Any, options: ClusterOptions) -> bool:
    """Connect to Ray unless this process already is; returns whether this call connected."""
    if ray.is_initialized():
        return False
    import models

    from . import __file__ as backend_init

    runtime_env: dict[str, Any] = {"py_modules": [str(Path(backend_init).parent), str(Path(models.__file__).parent)]}
    if _forwarded_env():
        runtime_env["env_vars"] = _forwarded_env()
    kwargs: dict[str, Any] = {"address": options.address, "runtime_env": runtime_env, "log_to_driver": False,
                              "logging_level": "ERROR"}
    if options.address == "local":
        kwargs["include_dashboard"] = False
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = "start a local Ray cluster" if options.address == "local" else \
            f"connect to the Ray cluster at {options.address}"
        raise ClusterError(f"Could not {where} ({str(error).splitlines()[0] if str(error) else error}). Start the "
                           "head with `ray start --head` and give its address (or 'auto' on a machine that "
                           "joined), or use --ray without an address for a cluster on this machine.") from None
    return True


def _plan_workers(ray: Any, options: ClusterOptions, lines: int) -> tuple[int, float, float, str]:
    """Worker count and per-worker CPUs and GPUs for this cluster, and a line describing the plan."""
    resources = ray.cluster_resources()
    cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    gpus_per = options.gpus_per_worker if options.gpus_per_worker is not None else (1.0 if gpus >= 1 else 0.0)
    if options.cpus_per_worker < 0 or gpus_per < 0:
        raise ClusterError("--cpus-per-worker and --gpus-per-worker must not be negative.")
    if gpus_per > 0 and gpus < gpus_per:
        raise ClusterError(f"--gpus-per-worker {gpus_per:g} asks for GPUs, but the cluster has {gpus:g}; "
                           "use --gpus-per-worker 0 to run on CPUs, or add GPU nodes.")
    fit = int(cpus / options.cpus_per_worker + 1e-9) if options.cpus_per_worker > 0 else lines
    if gpus_per > 0:
        fit = min(fit, int(gpus / gpus_per + 1e-9))
    if options.workers is not None and options.workers < 1:
        raise ClusterError("--workers must be at least 1.")
    count = max(1, min(options.workers or fit or 1, lines))
    plan = (f"Ray: {count} worker{'s' if count != 1 else ''} ({options.cpus_per_worker:g} CPU"
            + (f", {gpus_per:g} GPU" if gpus_per else "") + f" each) on a cluster of {cpus:g} CPU{'s' * (cpus != 1)}, "
            f"{gpus:g} GPU{'s' * (gpus != 1)}")
    if options.workers and options.workers > fit:
        plan += f"; only {fit} fit at once, the others start when resources free up"
    return count, options.cpus_per_worker, gpus_per, plan


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


class _Dispatcher:
    """Runs the lines of one batch on a set of actors: dispatch, results, dead workers (module docstring, 3-5)."""

    def __init__(self, ray: Any, todo: deque[_Line], ledger: BatchLedger, options: ClusterOptions,
                 summary: BatchSummary, progress: ClusterProgress, actor_class: Any, count: int) -> None:
        from ray.exceptions import RayActorError, RayError

        self.ray, self.todo, self.ledger, self.options = ray, todo, ledger, options
        self.summary, self.progress, self.actor_class = summary, progress, actor_class
        self.actor_died, self.ray_error = RayActorError, RayError
        self.workers: list[_Worker] = []
        self.inflight: dict[Any, tuple[_Worker, _Line]] = {}
        self.replacements = count * (options.max_retries + 1)
        self.ever_ready = False

    def start_worker(self) -> None:
        """Create an actor; it gets lines once its ``ready`` call returns."""
        actor = self.actor_class.remote()
        self.workers.append(_Worker(actor, actor.ready.remote()))

    def kill_workers(self) -> None:
        """Kill every actor of this batch (their processes end; lines in flight are dropped)."""
        for worker in self.workers:
            try:
                self.ray.kill(worker.actor, no_restart=True)
            except Exception:  # already dead, or the connection is gone
                pass

    def run(self, plan: str) -> None:
        """Until every line is written, failed, or cannot run: dispatch, then handle what comes back."""
        deadline = time.monotonic() + self.options.start_timeout
        while self.todo or self.inflight:
            live = [w for w in self.workers if not w.dead]
            if not live:
                reason = "every worker died and the replacements ran out"
                for line in self.todo:
                    self.fail(line, f"Not run: {reason}.")
                self.todo.clear()
                return
            for worker in live:
                self.dispatch(worker)
            if not self.ever_ready and time.monotonic() > deadline:
                raise ClusterError(f"No Ray worker became ready within {self.options.start_timeout:g} s ({plan}). "
                                   "Check that the cluster has the CPUs/GPUs free, or lower --cpus-per-worker / "
                                   "--gpus-per-worker.")
            starting = {w.ready_ref: w for w in live if not w.ready}
            done, _ = self.ray.wait([*self.inflight, *starting], num_returns=1, timeout=0.25)
            self.progress.refresh()
            for ref in done:
                if ref in starting:
                    self.on_ready(starting[ref], ref)
                elif ref in self.inflight:  # else: already handled with its dead worker
                    self.on_result(ref)

    def dispatch(self, worker: _Worker) -> None:
        """Give a ready worker lines up to ``_DEPTH``, shipping each line's audio bytes."""
        while worker.ready and len(worker.queue) < _DEPTH and self.todo:
            line = self.todo.popleft()
            audio = line.item.params["audio"] if line.item.params else None
            path = Path(str(audio.get("path") if isinstance(audio, dict) else audio))
            try:
                audio_bytes = path.read_bytes()
            except OSError as error:
                self.fail(line, f"Cannot read the audio file {path}: {error.strerror or error}. Check the path.")
                continue
            ref = worker.actor.generate.remote(line.item.params, path.name, audio_bytes)
            worker.queue.append(ref)
            self.inflight[ref] = (worker, line)

    def on_ready(self, worker: _Worker, ref: Any) -> None:
        """A worker finished starting (or died trying)."""
        try:
            worker.info = self.ray.get(ref)
        except self.actor_died as error:
            if not self.ever_ready:  # the first worker cannot start: the environment is broken
                raise ClusterError(f"No Ray worker could start: {_short(error)}. Each worker needs the backend's "
                                   "Python packages (docs/cluster.md).") from None
            self.worker_died(worker, error)
            return
        worker.ready = True
        if not self.ever_ready:
            self.ever_ready = True
            self.progress.start(len(self.todo) + len(self.inflight))  # the ETA's clock starts with a worker
        self.progress.workers += 1

    def on_result(self, ref: Any) -> None:
        """A line came back: write it, report its failure, or retry it when its worker died."""
        worker, line = self.inflight[ref]
        try:
            reply = self.ray.get(ref)
        except self.actor_died as error:
            self.worker_died(worker, error)
            return
        except self.ray_error as error:
            reply = {"ok": False, "error": f"Ray failed the line: {_short(error)}"}
        del self.inflight[ref]
        worker.queue.remove(ref)
        if not reply["ok"]:
            self.fail(line, reply["error"])
            return
        item = line.item
        assert item.output is not None
        try:
            item.output.parent.mkdir(parents=True, exist_ok=True)
            self.ledger.begin(item.output, line.fingerprint)
            write_atomic(item.output, reply["data"], what="motion file")
            self.ledger.commit(item.output, line.fingerprint)
        except OSError as error:
            self.fail(line, f"Could not write {item.output}: {error.strerror or error}. Choose a folder you can "
                            "write to.")
            return
        except OutputError as error:
            self.fail(line, error.message)
            return
        self.summary.written.append(item.label)
        self.progress.line_done(item.label, f"wrote {item.output} ({reply['frames']} frames)")

    def fail(self, line: _Line, message: str) -> None:
        """Report a line as failed."""
        self.summary.failed.append((line.item.label, message))
        self.progress.line_done(line.item.label, f"failed: {message}")

    def worker_died(self, worker: _Worker, error: BaseException) -> None:
        """Put a dead worker's lines back (the running one counted, module docstring 4) and replace the worker."""
        worker.dead = True
        if worker.ready:
            self.progress.workers -= 1
        lines = [self.inflight.pop(ref)[1] for ref in worker.queue if ref in self.inflight]
        worker.queue.clear()
        if lines:
            running, queued = lines[0], lines[1:]  # an actor runs its calls in order: the first was running
            running.attempts += 1
            where = f"worker pid {worker.info.get('pid', '?')} on {worker.info.get('host', '?')}"
            if running.attempts > self.options.max_retries:
                self.fail(running, f"{running.attempts} workers died while generating this line (the last: {where}: "
                                   f"{_short(error)}); it may crash the engine (out of memory, a native crash). "
                                   "Check the line, or give the workers more memory.")
            else:
                self.summary.retried.append((running.item.label, f"{where} died while generating it"))
                queued = [running, *queued]
            self.todo.extendleft(reversed(queued))
        if self.replacements > 0 and (self.todo or self.inflight):
            self.replacements -= 1
            self.start_worker()


def run_batch_ray(items: list[BatchItem], ledger: BatchLedger, options: ClusterOptions, *, force: bool = False,
                  progress: ClusterProgress | None = None) -> BatchSummary:
    """Generate every item on Ray actors (see the module docstring for the design).

    Args:
        items: from ``read_manifest`` or ``scan_folder``.
        ledger: the output folder's settings record; done items are skipped without contacting Ray.
        options: cluster address and worker resources.
        force: regenerate items that are done.
        progress: the aggregated progress line (stderr when None).

    Returns:
        The summary; ``interrupted`` after Ctrl-C, ``retried`` lists the lines run again after a worker died.

    Raises:
        ClusterError: Ray is missing, the cluster cannot be reached, or no worker could start.
    """
    ray = require_ray()
    summary = BatchSummary(total=len(items))
    progress = progress or ClusterProgress(len(items))
    started = time.monotonic()
    todo: deque[_Line] = deque()
    for item in items:
        fingerprint = triage(item, summary, progress, ledger, force)
        if fingerprint is not None:
            todo.append(_Line(item, fingerprint))
    if not todo:
        summary.seconds = time.monotonic() - started
        return summary

    # Ray prints the raylet's messages ("A worker died …") to stdout, which carries the summary: send them to
    # stderr with the progress, up to the shutdown that stops Ray's printing thread.
    with contextlib.redirect_stdout(sys.stderr):
        connected_here = False
        dispatcher: _Dispatcher | None = None
        try:
            connected_here = _connect(ray, options)
            count, cpus, gpus, plan = _plan_workers(ray, options, len(todo))
            progress.stream.write(plan + "\n")
            actor_options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus, "max_restarts": 0}
            job_env = (ray.get_runtime_context().runtime_env or {}).get("env_vars") or {}
            if any(job_env.get(name) != value for name, value in _forwarded_env().items()):
                # joined a job someone else started, without our settings: bring them (costs Ray's pre-started
                # worker processes, which only serve the job's own environment)
                actor_options["runtime_env"] = {"env_vars": _forwarded_env()}
            dispatcher = _Dispatcher(ray, todo, ledger, options, summary, progress,
                                     ray.remote(LineWorker).options(**actor_options), count)
            for _ in range(count):
                dispatcher.start_worker()
            dispatcher.run(plan)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            if dispatcher is not None:
                dispatcher.kill_workers()
            if connected_here:
                ray.shutdown()
            summary.seconds = time.monotonic() - started
    return summary
