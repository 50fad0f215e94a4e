"""``python -m backend serve``: the long-lived stdio server (DESIGN.md section 4).

Threads:
- the **reader** reads stdin line by line, answers protocol errors, and handles the control methods at once:
  ``initialize``, ``cancel`` (a queued request is answered "cancelled" immediately, a running one has its
  ``CancelToken`` set) and ``shutdown`` (cancel everything, wait for the worker, answer, exit);
- the **worker** runs ``generate`` and ``character`` one at a time in arrival order;
- the **ticker** repeats the running request's latest progress whenever nothing was sent for 0.25 s, so the
  client hears from every request at least every 0.5 s even while a model loads;
- the **main** thread waits for a reason to stop (``shutdown``, stdin closed, SIGTERM/SIGINT), cancels what
  is left, gives the worker up to ``timeouts.DRAIN_S`` to answer, and exits with ``os._exit`` (no interpreter
  finalisation that could hang on a reader blocked in ``read``).

Outcomes a client can rely on:
- malformed JSON / binary garbage → ``PARSE_ERROR`` with ``id: null``; a line over 1 MiB → ``INVALID_REQUEST``
  with ``id: null`` (the rest of the line is skipped); an unknown method → ``METHOD_NOT_FOUND``; bad params
  → ``INVALID_PARAMS`` naming the field; a handler that raises → an error response (``INTERNAL_ERROR`` with
  the traceback in ``data`` for bugs). The server keeps serving after all of them.
- stdin closed → the client is gone: running and queued work is cancelled, exit status 0.
- SIGTERM / SIGINT → the same, each open request answered ``CANCELLED``; exit status 143 / 130.
- SIGKILL → nothing runs, but results are only ever renamed into place when complete, so the output path
  holds either nothing or a whole file.

stdout carries protocol bytes only: at start the server moves the real stdout to a private descriptor and
points descriptor 1 at stderr, so a stray ``print`` or a native library's output cannot corrupt the stream.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import BinaryIO

from . import timeouts
from .engines.base import CancelToken
from .errors import CANCELLED, INTERNAL_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, EngineError, ExpGestError
from .handlers import MethodSpec, RequestContext, ServerState, get_method, method
from .protocol import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Message,
    ProtocolError,
    Request,
    RequestId,
    Response,
    error_response,
    error_response_for,
    is_compatible,
    parse_request,
    progress_notification,
)
from .transport import LineReader, MessageWriter, Oversized

log = logging.getLogger("expgest.server")

_HEARTBEAT_S = 0.25    # resend the latest progress when nothing was sent for this long
_MIN_INTERVAL_S = 0.1  # at most ~10 progress messages a second for the same stage


class _Progress:
    """Forwards one request's progress as notifications: immediately on a new stage, throttled otherwise."""

    def __init__(self, server: Server, request_id: RequestId) -> None:
        self._server = server
        self._id = request_id
        self._lock = threading.Lock()
        self._latest: tuple[str, float | None, str] = ("starting", 0.0, "")
        self._last_stage = ""
        self._last_sent = 0.0
        self._closed = False

    def __call__(self, stage: str, done: float | None = None, message: str = "") -> None:
        now = time.monotonic()
        with self._lock:
            self._latest = (stage, done, message)
            if self._closed or (stage == self._last_stage and now - self._last_sent < _MIN_INTERVAL_S):
                return
            self._send_locked(now)

    def heartbeat(self) -> None:
        """Resend the latest progress if nothing went out for ``_HEARTBEAT_S``."""
        now = time.monotonic()
        with self._lock:
            if not self._closed and now - self._last_sent >= _HEARTBEAT_S:
                self._send_locked(now)

    def close(self) -> None:
        """No progress after this (called before the response goes out, so it is always last)."""
        with self._lock:
            self._closed = True

    def _send_locked(self, now: float) -> None:
        stage, done, message = self._latest
        self._server.send(progress_notification(self._id, stage, done, message))
        self._last_stage = stage
        self._last_sent = now


@dataclass
class _Job:
    request: Request
    spec: MethodSpec
    cancel: CancelToken = field(default_factory=CancelToken)
    progress: _Progress | None = None


class Server:
    """The stdio server: reader, worker and ticker threads around a FIFO of work requests.

    Args:
        reader: framing of the input stream.
        writer: framing of the output stream (protocol bytes only).
        state: server-wide state (engine cache, models folder).
    """

    def __init__(self, reader: LineReader, writer: MessageWriter, state: ServerState) -> None:
        self._reader = reader
        self._writer = writer
        self.state = state
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._current: _Job | None = None
        self._stopping = False
        self._stop = threading.Event()
        self._status = 0
        self._worker = threading.Thread(target=self._work_loop, name="expgest-worker", daemon=True)
        self._ticker = threading.Thread(target=self._tick_loop, name="expgest-ticker", daemon=True)
        self._reader_thread = threading.Thread(target=self._read_loop, name="expgest-reader", daemon=True)

    # ---- sending ---------------------------------------------------------------------------------
    def send(self, message: Message) -> None:
        """Write one message; a vanished client stops the server instead of raising."""
        try:
            self._writer.write(message)
        except ValueError as error:  # NaN or an oversized result: answer with an error instead
            if isinstance(message, Response) and message.error is None:
                self.send(error_response(message.id, INTERNAL_ERROR, f"The result could not be sent: {error}."))
            else:
                log.error("dropped a message that cannot be encoded: %s", error)
        except OSError as error:
            log.info("client went away (%s); stopping", error)
            self.request_stop("client went away", 0)

    # ---- lifecycle -------------------------------------------------------------------------------
    def serve(self) -> int:
        """Run until shutdown, stdin EOF or a signal; returns the exit status."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.request_stop("SIGTERM", 128 + signal.SIGTERM))
            signal.signal(signal.SIGINT, lambda *_: self.request_stop("SIGINT", 128 + signal.SIGINT))
        self._worker.start()
        self._ticker.start()
        self._reader_thread.start()
        # The generation path's imports (numpy, scipy, soundfile: about a second) happen now, in the
        # background, not after the first request arrives, so even that request's Cancel is honoured at once.
        threading.Thread(target=_warm_imports, name="warm-imports", daemon=True).start()
        log.info("serving protocol %s (pid %d)", PROTOCOL_VERSION, os.getpid())
        while not self._stop.wait(0.25):
            pass
        self._worker.join(timeouts.DRAIN_S)
        if self._worker.is_alive():
            log.warning("the running request did not stop within %.0f s", timeouts.DRAIN_S)
        return self._status

    def request_stop(self, reason: str, status: int, *, release: bool = True) -> None:
        """Cancel running and queued work and let ``serve`` return ``status``. Safe from any thread and from
        signal handlers; the first reason wins. ``release=False`` leaves releasing ``serve`` to the caller
        (``shutdown`` answers first)."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._status = status
            queued = list(self._queue)
            self._queue.clear()
            if self._current is not None:
                self._current.cancel.cancel()
            self._cond.notify_all()
        log.info("stopping: %s", reason)
        for job in queued:
            self.send(error_response(job.request.id, CANCELLED,
                                     f"The backend stopped ({reason}) before this request started."))
        if release:
            self._stop.set()

    # ---- reader: parse, answer control methods, queue work ---------------------------------------
    def _read_loop(self) -> None:
        try:
            while not self._stop.is_set():
                line = self._reader.read_line()
                if line is None:
                    self.request_stop("stdin closed", 0)
                    return
                if isinstance(line, Oversized):
                    self.send(error_response(None, INVALID_REQUEST,
                                             f"Message of {line.size} bytes is longer than the limit of "
                                             f"{MAX_MESSAGE_BYTES} bytes; send files by path, never their content."))
                    continue
                try:
                    request = parse_request(line)
                except ProtocolError as error:
                    self.send(error_response(error.request_id, error.code, error.message, error.data))
                    continue
                self._dispatch(request)
        except Exception as error:  # reading stdin failed: the client is unusable
            log.exception("reader failed")
            self.request_stop(f"reading stdin failed: {error}", 1)

    def _dispatch(self, request: Request) -> None:
        if self._is_open(request.id):
            self.send(error_response(request.id, INVALID_REQUEST,
                                     f"Request id {request.id!r} is already in use by an unfinished request; "
                                     "use a new id for every request."))
            return
        spec = get_method(request.method)
        if spec is None:  # parse_request only passes backend.protocol.METHODS; all are declared
            self.send(error_response(request.id, METHOD_NOT_FOUND, f"Unknown method {request.method!r}."))
        elif spec.immediate:
            spec.handler(self, request)
        else:
            self._enqueue(request, spec)

    def _is_open(self, request_id: RequestId) -> bool:
        with self._cond:
            if self._current is not None and self._current.request.id == request_id:
                return True
            return any(job.request.id == request_id for job in self._queue)

    def cancel_request(self, target: RequestId) -> str:
        """Cancel request ``target``: a queued one is answered "cancelled" now, a running cancellable one has its
        ``CancelToken`` set. Returns ``"queued"``, ``"running"``, ``"not cancellable"`` or ``"unknown"``."""
        state = "unknown"
        queued_job = None
        with self._cond:
            if self._current is not None and self._current.request.id == target:
                state = "running" if self._current.spec.cancellable else "not cancellable"
                if self._current.spec.cancellable:
                    self._current.cancel.cancel()
            else:
                for job in self._queue:
                    if job.request.id == target:
                        queued_job = job
                        break
                if queued_job is not None:
                    self._queue.remove(queued_job)
                    state = "queued"
        if queued_job is not None:
            self.send(error_response(target, CANCELLED, "The request was cancelled before it started."))
        log.info("cancel %r: %s", target, state)
        return state

    def drain(self) -> None:
        """Wait up to ``timeouts.DRAIN_S`` for the running request to end."""
        self._worker.join(timeouts.DRAIN_S)

    def release(self) -> None:
        """Let ``serve`` return (after ``request_stop(..., release=False)``)."""
        self._stop.set()

    def _enqueue(self, request: Request, spec: MethodSpec) -> None:
        if spec.validate is not None:
            try:
                spec.validate(self.state, request.params)
            except Exception as error:  # answered now, never queued behind a long generation
                self.send(_error_for(request.id, request.method, error))
                return
        job = _Job(request, spec)
        with self._cond:
            if self._stopping:
                ahead = -1
            else:
                ahead = len(self._queue) + (self._current is not None)
                self._queue.append(job)
                self._cond.notify_all()
        if ahead < 0:
            self.send(error_response(request.id, CANCELLED, "The backend is shutting down."))
        elif ahead:
            self.send(progress_notification(request.id, "queued", 0.0,
                                            f"waiting for {ahead} earlier request{'s' if ahead > 1 else ''}"))

    # ---- ticker: progress heartbeat ---------------------------------------------------------------
    def _tick_loop(self) -> None:
        while not self._stop.wait(0.05):
            with self._cond:
                job = self._current
            if job is not None and job.progress is not None:
                job.progress.heartbeat()

    # ---- worker: one request at a time ------------------------------------------------------------
    def _work_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                job = self._queue.popleft()
                job.progress = _Progress(self, job.request.id)
                self._current = job
            response = self._run(job)
            job.progress.close()
            with self._cond:
                self._current = None
                self._cond.notify_all()
            self.send(response)

    def _run(self, job: _Job) -> Response:
        request = job.request
        handler = job.spec.handler
        assert job.progress is not None
        started = time.perf_counter()
        try:
            job.progress("starting", 0.0, request.method)
            context = RequestContext(request_id=request.id, progress=job.progress, cancel=job.cancel,
                                     state=self.state)
            job.cancel.check()
            result = handler(context, request.params)
            log.info("%s %r done in %.2f s", request.method, request.id, time.perf_counter() - started)
            return Response(id=request.id, result=result)
        except Exception as error:
            return _error_for(request.id, request.method, error)


# ---- the immediate methods: answered on the reader thread, never queued behind a generation --------------


@method("initialize", immediate=True)
def _initialize(server: Server, request: Request) -> None:
    """Check the client's protocol version and answer with what this backend offers."""
    client_version = request.params.get("protocol_version")
    if client_version is not None and not is_compatible(PROTOCOL_VERSION, client_version):
        server.send(error_response(request.id, INVALID_REQUEST,
                                   f"This backend speaks protocol {PROTOCOL_VERSION}, the client {client_version}; "
                                   "install matching versions of the add-on and its backend.",
                                   {"protocol_version": PROTOCOL_VERSION}))
        return
    try:
        result = server.state.info()
    except Exception as error:
        server.send(_error_for(request.id, "initialize", error))
        return
    server.send(Response(id=request.id, result=result))


@method("cancel", immediate=True)
def _cancel(server: Server, request: Request) -> None:
    """Stop request ``params.id`` (queued: answered "cancelled" now; running: between steps)."""
    target = request.params["id"]
    state = server.cancel_request(target)
    server.send(Response(id=request.id, result={"id": target, "state": state}))


@method("shutdown", immediate=True)
def _shutdown(server: Server, request: Request) -> None:
    """Cancel everything, wait for the worker, answer, then let the process exit."""
    server.request_stop("shutdown requested", 0, release=False)
    server.drain()
    server.send(Response(id=request.id, result={}))
    server.release()


def _warm_imports() -> None:
    try:
        from . import audio, pipeline  # noqa: F401
        from .engines import procedural  # noqa: F401
    except Exception:  # a missing package is reported by the request that needs it, in words
        log.debug("warm-up import failed", exc_info=True)


def _error_for(request_id: RequestId, method: str, error: Exception) -> Response:
    """Translate an exception into an error response: domain errors keep their code and message, anything
    else is a bug reported as ``INTERNAL_ERROR`` with the traceback in ``data``."""
    if isinstance(error, ExpGestError):  # protocol errors included: one hierarchy, each class its code
        log.info("%s %r failed: %s", method, request_id, error.message)
        return error_response_for(request_id, error)
    if isinstance(error, ModuleNotFoundError) and error.name:  # an interpreter without the backend's requirements
        missing = EngineError(f"The backend's Python ({sys.executable}) lacks the package '{error.name}'. Install "
                              "the backend's requirements into it (numpy, scipy, soundfile; torch and transformers "
                              "for the expgest engine), or choose another interpreter.")
        log.info("%s %r failed: %s", method, request_id, missing.message)
        return error_response(request_id, missing.code, missing.message, {"module": error.name})
    log.error("%s %r raised %s", method, request_id, "".join(traceback.format_exception(error)).rstrip())
    return error_response(request_id, INTERNAL_ERROR,
                          f"Internal error in {method}: {type(error).__name__}: {error}. This is a bug in the "
                          "backend; please report it with the backend log.",
                          {"exception": type(error).__name__, "traceback": traceback.format_exc()[-8000:]})


def _protect_stdout() -> BinaryIO:
    """Move the real stdout to a private descriptor for protocol bytes; fd 1 and ``sys.stdout`` go to stderr."""
    protocol_fd = os.dup(sys.stdout.fileno())
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "wb")


def serve_stdio(*, models_dir: str | None = None, log_level: str = "INFO") -> int:
    """Serve the protocol on this process's stdin/stdout until told to stop, then exit the process.

    Args:
        models_dir: the ExpGest weights folder reported by ``initialize`` (default ``$EXPGEST_MODELS``).
        log_level: logging level of the stderr log.

    Returns:
        Never returns normally: the process exits with 0 (shutdown or stdin closed), 143 (SIGTERM),
        130 (SIGINT) or 1 (stdin unreadable).
    """
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, log_level.upper(), logging.INFO),
                        format="expgest-backend %(levelname)s: %(message)s")
    protocol_out = _protect_stdout()
    state = ServerState(models_dir=models_dir or os.environ.get("EXPGEST_MODELS") or None)
    server = Server(LineReader(sys.stdin.buffer), MessageWriter(protocol_out), state)
    status = server.serve()
    try:
        protocol_out.flush()
    except OSError:
        pass
    logging.shutdown()
    sys.stderr.flush()
    os._exit(status)
