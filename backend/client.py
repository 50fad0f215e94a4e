"""Client for the backend's stdio server: start, handshake, requests, progress, supervision, shutdown.

Standard library only (Python ≥ 3.10): the Blender add-on, batch scripts and the tests all use it.

    client = BackendClient(sys.executable, env={"EXPGEST_MODELS": "/weights"})
    info = client.start()                          # spawns `python -m backend serve`, checks the version
    pending = client.generate(params, on_progress=lambda stage, done, message: print(stage, done))
    result = pending.result()                      # or poll() from a timer until pending.done()
    client.shutdown()                              # shutdown → wait → terminate → wait → kill

Threading rules:
- Two daemon threads per process: a **reader** decodes stdout into a ``queue.Queue`` and records each
  response on its ``PendingRequest``; a **stderr reader** keeps the last lines of the server's log. Neither
  ever runs a user callback.
- ``threads=False`` (POSIX; the Blender add-on's choice) starts no thread at all: the pipes are read without
  blocking inside ``poll()``, on the caller's thread. Blender runs Python on its main thread only, and its
  older releases (3.4 among them) release the GIL from the main thread without checking who holds it
  (``BPY_thread_save``, called around every depsgraph evaluation), so a Python thread that holds the GIL at
  that moment shares its thread state with the main thread: exceptions get lost ("SystemError: error return
  without exception set") or land in the wrong thread. Start it with ``begin_start()`` and
  ``handshake_result(..., block=False)`` to keep the caller's thread free while the server starts.
- Callbacks (``on_progress``, ``on_done``, ``on_exit``) run only inside ``poll()``, on the thread that calls
  it. ``PendingRequest.result()`` and ``request()`` call ``poll()`` while they wait, so a script that blocks
  also gets its progress callbacks, on its own thread. The add-on calls ``generate()`` and ``poll()`` from
  the main thread (a ``bpy.app.timers`` callback) and never blocks it.
- Use one client from one thread at a time for calls that dispatch callbacks (``poll``, ``result``,
  ``request``); ``cancel()``, ``done()`` and ``alive`` are safe from any thread.

Supervision: when the process exits without being asked to, every open request fails with a
``BackendError`` (code ``SERVER_EXITED``) that carries the exit status and the last lines of the server's
stderr, and ``on_exit`` is called from the next ``poll()``. ``shutdown()`` escalates (shutdown request →
wait → SIGTERM → wait → SIGKILL) and a ``weakref.finalize`` kills the process if the client is dropped or
the interpreter exits, so no backend outlives its client; a server whose client died also exits on its own
when its stdin closes.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import queue
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import timeouts
from .errors import (
    BackendTimeoutError,
    ExpGestError,
    InvalidRequestError,
    ParseError,
    ServerExitedError,
    ServerNotStartedError,
    VersionMismatchError,
)
from .protocol import (
    PROTOCOL_VERSION,
    Notification,
    ProtocolError,
    Request,
    RequestId,
    Response,
    encode_message,
    is_compatible,
    is_valid_id,
    parse_server_message,
)
from .transport import LineBuffer, LineReader, MessageWriter, Oversized

log = logging.getLogger("expgest.client")
server_log = logging.getLogger("expgest.backend")

ProgressCallback = Callable[[str, "float | None", str], None]
DEFAULT_ARGS: tuple[str, ...] = ("-m", "backend", "serve")
_STDERR_LINES = 200
_CHUNK = 64 * 1024  # bytes per non-blocking read
_MAX_CHUNKS = 64  # reads per pipe per poll() in thread-free mode (4 MiB)


# The client raises the errors of the one hierarchy (``backend.errors``): a server's error is rebuilt as the
# class its code names (``AudioError``, ``RequestError`` ...), the connection's own failures are
# ``ServerExitedError``, ``BackendTimeoutError``, ``VersionMismatchError`` and ``ServerNotStartedError``.
# ``BackendError`` is the name scripts catch them by.
BackendError = ExpGestError


class PendingRequest:
    """A request sent to the server; completed by the reader thread, callbacks dispatched by ``poll()``.

    Attributes:
        id: the request id.
        method: the protocol method.
        progress: the latest ``(stage, done, message)`` received, or None.
    """

    def __init__(self, client: BackendClient, request_id: RequestId, method: str,
                 on_progress: ProgressCallback | None, on_done: Callable[[PendingRequest], None] | None) -> None:
        self.id = request_id
        self.method = method
        self.progress: tuple[str, float | None, str] | None = None
        self._client = client
        self._on_progress = on_progress
        self._on_done = on_done
        self._event = threading.Event()
        self._result: dict[str, Any] | None = None
        self._error: BackendError | None = None

    def done(self) -> bool:
        """True once the server answered (or the process died). Safe from any thread."""
        return self._event.is_set()

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the answer, dispatching callbacks (``poll()``) on this thread meanwhile.

        Args:
            timeout: seconds to wait; None waits as long as it takes.

        Returns:
            The ``result`` object of the response.

        Raises:
            BackendError: the server answered with an error, or the process exited.
            BackendTimeoutError: ``timeout`` passed first (the request keeps running; ``cancel()`` it if needed).
        """
        if not self.wait(timeout):
            raise BackendTimeoutError(f"No answer to {self.method} request {self.id!r} within {timeout:g} s.")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: as long as it takes) for the answer, dispatching callbacks
        (``poll()``) on this thread meanwhile; True once answered."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._event.is_set():
            self._client.poll()
            remaining = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if remaining <= 0:
                return False
            self._event.wait(remaining)
        self._client.poll()
        return True

    def exception(self) -> BackendError | None:
        """The error of a finished request, or None (also None while it runs)."""
        return self._error if self._event.is_set() else None

    def cancel(self) -> None:
        """Ask the server to stop this request (queued or running); it then fails with code ``CANCELLED``.
        Returns at once; safe from any thread."""
        if not self._event.is_set():
            self._client.cancel(self.id)

    def _complete(self, result: dict[str, Any] | None, error: BackendError | None) -> bool:
        if self._event.is_set():
            return False
        self._result, self._error = result, error
        self._event.set()
        return True


class BackendClient:
    """Starts and supervises one backend server process and talks to it.

    Args:
        python: the backend's interpreter (``sys.executable``, or the add-on's configured Python).
        env: variables to set (or, with value None, remove) on top of this process's environment.
        cwd: working directory of the process (None: this process's).
        args: what follows the interpreter on the command line; default ``["-m", "backend", "serve"]``.
        on_exit: called from ``poll()`` with the ``BackendError`` when the process exits unexpectedly.
        threads: read the pipes on two daemon threads (True), or without blocking inside ``poll()`` and no
            thread at all (False; POSIX only, elsewhere it keeps the threads). See the module's threading rules.
    """

    def __init__(self, python: str, *, env: Mapping[str, str | None] | None = None, cwd: str | None = None,
                 args: Sequence[str] | None = None,
                 on_exit: Callable[[BackendError], None] | None = None, threads: bool = True) -> None:
        self.python = python
        self.env = dict(env or {})
        self.cwd = cwd
        self.args = list(DEFAULT_ARGS if args is None else args)
        self.on_exit = on_exit
        self.server_info: dict[str, Any] = {}
        self.exit_error: BackendError | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._writer: MessageWriter | None = None
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._pending: dict[RequestId, PendingRequest] = {}
        self._lock = threading.Lock()
        self._dispatch_lock = threading.RLock()
        self._ids = itertools.count(1)
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._finalizer: weakref.finalize | None = None
        self._threaded = threads or os.name != "posix"  # os.set_blocking on pipes: POSIX only before 3.12
        self._stdout_lines = LineBuffer()
        self._stderr_partial = b""
        self._stdout_closed = False
        self._start_deadline = 0.0
        self._start_timeout = 0.0

    # ---- lifecycle -------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """True while the process runs and has not been told to stop. Safe from any thread."""
        return self._process is not None and self._process.poll() is None and self.exit_error is None \
            and not self._closing

    @property
    def pid(self) -> int | None:
        """The server's process id (None before ``start``)."""
        return None if self._process is None else self._process.pid

    def start(self, timeout: float = 30.0) -> dict[str, Any]:
        """Spawn the server and perform the ``initialize`` handshake.

        Args:
            timeout: seconds allowed for the process to start and answer ``initialize``.

        Returns:
            The ``initialize`` result (protocol and server versions, engines, devices, models found).

        Raises:
            BackendError: the process could not start, exited, spoke another protocol major version
                (``VERSION_MISMATCH``) or sent garbage; the process is stopped and ``stderr`` carries its log.
            BackendTimeoutError: no answer within ``timeout``; the process is stopped.
        """
        info = self.handshake_result(self.begin_start(timeout))
        assert info is not None
        return info

    def begin_start(self, timeout: float = 30.0) -> PendingRequest:
        """Spawn the server and send ``initialize`` without waiting for the answer.

        Finish with ``handshake_result(handshake)`` (waits) or call ``poll()`` and then
        ``handshake_result(handshake, block=False)`` from a timer until it returns the result.

        Args:
            timeout: seconds allowed, from now, for the process to start and answer.

        Returns:
            The ``initialize`` request in flight.

        Raises:
            BackendError: the process could not be started (``SERVER_NOT_STARTED``) or exited at once.
        """
        if self._process is not None:
            raise ServerNotStartedError("This client already started a backend; create a new client.")
        environment = dict(os.environ)
        for key, value in self.env.items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        platform_options: dict[str, Any] = {}
        if os.name == "posix":
            platform_options["start_new_session"] = True  # a Ctrl-C in Blender's terminal must not kill it
        else:
            platform_options["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        command = [self.python, *self.args]
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, env=environment, cwd=self.cwd,
                                             **platform_options)
        except OSError as error:
            raise ServerNotStartedError(f"Could not start the backend with {self.python!r} "
                                                   f"({error.strerror or error}). Check the backend Python path in "
                                                   "the add-on preferences.") from None
        log.info("started backend pid %d: %s", self._process.pid, " ".join(command))
        self._finalizer = weakref.finalize(self, _reap, self._process)
        assert self._process.stdin is not None and self._process.stdout is not None
        assert self._process.stderr is not None
        self._writer = MessageWriter(self._process.stdin)
        if self._threaded:
            self_ref = weakref.ref(self)
            self._threads = [
                threading.Thread(target=_stdout_loop, args=(self_ref, self._process.stdout),
                                 name="expgest-client-reader", daemon=True),
                threading.Thread(target=_stderr_loop, args=(self_ref, self._process.stderr),
                                 name="expgest-client-stderr", daemon=True),
            ]
            for thread in reversed(self._threads):  # stderr first: the reader may join it at once on a dead process
                thread.start()
        else:
            os.set_blocking(self._process.stdout.fileno(), False)
            os.set_blocking(self._process.stderr.fileno(), False)
        self._start_timeout = timeout
        self._start_deadline = time.monotonic() + timeout
        try:
            return self.send("initialize", {"protocol_version": PROTOCOL_VERSION, "client": "expgest-client"})
        except BackendError as error:
            self._start_failed(error)
            raise

    def handshake_result(self, handshake: PendingRequest, block: bool = True) -> dict[str, Any] | None:
        """The ``initialize`` answer to ``begin_start``, checked; the server is then ready for requests.

        Args:
            handshake: what ``begin_start`` returned.
            block: wait until the answer or the start timeout (True), or return None at once while the
                server is still starting within its time (False; call ``poll()`` first).

        Raises:
            BackendError: the process exited, spoke another protocol major version (``VERSION_MISMATCH``) or
                sent garbage; the process is stopped and ``stderr`` carries its log.
            BackendTimeoutError: no answer within the start timeout; the process is stopped.
        """
        remaining = self._start_deadline - time.monotonic()
        try:
            if not handshake.done():
                if not block and remaining > 0:
                    return None
                if not block or remaining <= 0 or not handshake.wait(remaining):
                    handshake.cancel()
                    raise BackendTimeoutError(f"The backend did not answer its start-up handshake within "
                                              f"{self._start_timeout:g} s.")
            info = handshake.result(0)
        except BackendError as error:
            self._start_failed(error)
            raise
        server_version = info.get("protocol_version")
        if not isinstance(server_version, str) or not is_compatible(server_version):
            self.shutdown(timeout=timeouts.QUICK_STOP_S)
            raise VersionMismatchError(f"The backend speaks protocol {server_version!r} but this add-on "
                                                 f"needs {PROTOCOL_VERSION}; install matching versions.")
        self.server_info = info
        return info

    def _start_failed(self, error: BackendError) -> None:
        """Stop a server whose start failed and give ``error`` its log."""
        self.shutdown(timeout=timeouts.QUICK_STOP_S)
        if not error.stderr:
            error.stderr = self.stderr_tail()

    def shutdown(self, timeout: float = timeouts.SHUTDOWN_WAIT_S) -> int | None:
        """Stop the server in escalating steps and release every resource; idempotent.

        shutdown request → wait ``timeout`` → SIGTERM → wait → SIGKILL → wait (``backend.timeouts``). Open
        requests fail with ``SERVER_EXITED``.

        Returns:
            The process's exit status (negative: killed by that signal), or None if it was never started.
        """
        process = self._process
        if process is None:
            return None
        self._closing = True
        if process.poll() is None:
            self._request_shutdown()
            if not self._wait(timeout):
                log.warning("backend pid %d ignored shutdown; terminating", process.pid)
                self._terminate()
                if not self._wait(timeouts.TERMINATE_WAIT_S):
                    log.warning("backend pid %d ignored SIGTERM; killing", process.pid)
                    self._kill()
                    self._wait(timeouts.KILL_WAIT_S)
        self._cleanup()
        return process.returncode

    def _request_shutdown(self) -> None:
        try:
            self._write(Request(id=next(self._ids), method="shutdown", params={}))
        except BackendError:
            pass
        self._close_stdin()

    def _wait(self, timeout: float) -> bool:
        assert self._process is not None
        if self._threaded:
            try:
                self._process.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        # Thread-free: keep reading the pipes while waiting, so a server writing its last lines never blocks
        # on a full pipe instead of exiting.
        deadline = time.monotonic() + timeout
        while True:
            self._pump()
            try:
                self._process.wait(max(0.0, min(0.02, deadline - time.monotonic())))
                return True
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    return False

    def _terminate(self) -> None:
        assert self._process is not None
        try:
            self._process.terminate()
        except OSError:
            pass

    def _kill(self) -> None:
        assert self._process is not None
        try:
            self._process.kill()
        except OSError:
            pass

    def _close_stdin(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def _cleanup(self) -> None:
        self._close_stdin()
        self._pump()  # thread-free: the last lines of an exited server
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(5.0)
        assert self._process is not None
        for stream in (self._process.stdout, self._process.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        if self._finalizer is not None:
            self._finalizer.detach()
        self._fail_pending(ServerExitedError("The backend was shut down before answering."))

    def __enter__(self) -> BackendClient:
        if self._process is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    # ---- requests --------------------------------------------------------------------------------
    def send(self, method: str, params: Mapping[str, Any] | None = None, *,
             on_progress: ProgressCallback | None = None,
             on_done: Callable[[PendingRequest], None] | None = None) -> PendingRequest:
        """Send a request without waiting.

        Args:
            method: protocol method.
            params: its params (JSON-ready).
            on_progress: ``(stage, done, message)`` callback, run from ``poll()``.
            on_done: ``(pending)`` callback when the answer arrived, run from ``poll()``.

        Raises:
            BackendError: the process is not running (``SERVER_EXITED`` with its log).
        """
        request_id = next(self._ids)
        pending = PendingRequest(self, request_id, method, on_progress, on_done)
        with self._lock:
            if self.exit_error is not None:
                raise self.exit_error
            self._pending[request_id] = pending
        try:
            self._write(Request(id=request_id, method=method, params=dict(params or {})))
        except BackendError:
            with self._lock:
                self._pending.pop(request_id, None)
            raise
        return pending

    def request(self, method: str, params: Mapping[str, Any] | None = None, timeout: float | None = None
                ) -> dict[str, Any]:
        """Send a request and wait for its result (callbacks dispatched on this thread meanwhile).

        Raises:
            BackendError: the error response, or the process failed.
            BackendTimeoutError: no answer within ``timeout``; a running request is then cancelled.
        """
        pending = self.send(method, params)
        try:
            return pending.result(timeout)
        except BackendTimeoutError:
            pending.cancel()
            raise

    def generate(self, params: Mapping[str, Any], on_progress: ProgressCallback | None = None,
                 on_done: Callable[[PendingRequest], None] | None = None) -> PendingRequest:
        """Queue a generation (params: a ``GenerationRequest`` as JSON, DESIGN.md section 3); non-blocking."""
        return self.send("generate", params, on_progress=on_progress, on_done=on_done)

    def generate_batch(self, requests: list[Mapping[str, Any]], clips_per_forward: int | str = "auto",
                       on_progress: ProgressCallback | None = None,
                       on_done: Callable[[PendingRequest], None] | None = None) -> PendingRequest:
        """Queue several generations as one request (``generate_batch``: window k of up to ``clips_per_forward``
        clips per forward); non-blocking. Split its result with ``batch_outcomes``."""
        return self.send("generate_batch", {"requests": [dict(r) for r in requests],
                                            "clips_per_forward": clips_per_forward},
                         on_progress=on_progress, on_done=on_done)

    def character(self, params: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Build a character (rest skeleton, optional mesh) and wait for it (DESIGN.md section 4)."""
        return self.request("character", params, timeout)

    def cancel(self, request_id: RequestId) -> None:
        """Ask the server to cancel request ``request_id``; returns at once. Safe from any thread."""
        try:
            self.send("cancel", {"id": request_id})
        except BackendError as error:
            log.info("cancel of %r not sent: %s", request_id, error.message)

    def poll(self) -> int:
        """Dispatch queued progress, completion and exit callbacks on the calling thread.

        Returns:
            The number of events dispatched.
        """
        count = 0
        with self._dispatch_lock:
            self._pump()
            while True:
                try:
                    kind, payload = self._events.get_nowait()
                except queue.Empty:
                    return count
                count += 1
                try:
                    if kind == "progress":
                        pending, (stage, done, message) = payload
                        if pending._on_progress is not None:
                            pending._on_progress(stage, done, message)
                    elif kind == "done":
                        if payload._on_done is not None:
                            payload._on_done(payload)
                    elif kind == "exit" and self.on_exit is not None:
                        self.on_exit(payload)
                except Exception:
                    log.exception("a backend client callback raised")

    def stderr_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines the server wrote to stderr."""
        with self._lock:
            return "\n".join(list(self._stderr)[-lines:])

    # ---- internals -------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Thread-free mode: handle what the server has written so far, without blocking; at EOF on stdout,
        the exit is handled as the reader thread would."""
        process = self._process
        if self._threaded or process is None or self._stdout_closed:
            return
        self._pump_stderr()
        assert process.stdout is not None
        for _ in range(_MAX_CHUNKS):  # bounded: a chatty server cannot keep the caller's thread here
            try:
                data = os.read(process.stdout.fileno(), _CHUNK)
            except BlockingIOError:
                return
            except (OSError, ValueError):  # closed by shutdown()
                data = b""
            lines = self._stdout_lines.feed(data) if data else self._stdout_lines.finish()
            for line in lines:
                self._handle_line(line)
            if not data:
                self._stdout_closed = True
                self._on_stdout_closed()
                return

    def _pump_stderr(self) -> None:
        """Thread-free mode: keep the lines the server wrote to stderr so far."""
        assert self._process is not None and self._process.stderr is not None
        for _ in range(_MAX_CHUNKS):
            try:
                data = os.read(self._process.stderr.fileno(), _CHUNK)
            except BlockingIOError:
                return
            except (OSError, ValueError):
                data = b""
            text = self._stderr_partial + data
            lines = text.split(b"\n")
            self._stderr_partial = lines.pop() if data else b""
            if not data and lines[-1] == b"":
                lines.pop()
            for raw in lines:
                line = raw.decode("utf-8", "replace").rstrip("\r")
                server_log.debug("%s", line)
                self._append_stderr(line)
            if not data:
                return

    def _write(self, request: Request) -> None:
        if self._writer is None:
            raise ServerNotStartedError("The backend is not running; call start() first.")
        try:
            data = encode_message(request)
        except ValueError as error:  # NaN, infinity or an oversized request: the caller's mistake
            raise InvalidRequestError(f"The {request.method} request could not be sent: {error}.") from None
        try:
            self._writer.write_bytes(data)
        except (OSError, ValueError):  # broken pipe, or stdin already closed by shutdown()
            raise self.exit_error or ServerExitedError("The backend is not running.",
                                                     stderr=self.stderr_tail()) from None

    def _handle_line(self, line: bytes | Oversized) -> None:
        if isinstance(line, Oversized):
            log.error("backend sent a line of %d bytes; ignored", line.size)
            return
        try:
            message = parse_server_message(line)
        except ProtocolError as error:
            log.error("backend sent an invalid message: %s", error.message)
            self._on_garbage(line, error)
            return
        if isinstance(message, Notification):
            self._on_notification(message)
        else:
            self._on_response(message)

    def _on_notification(self, message: Notification) -> None:
        if message.method != "progress":
            log.debug("ignored notification %s", message.method)
            return
        params = message.params
        request_id = params.get("id")
        if not is_valid_id(request_id):
            return
        with self._lock:
            pending = self._pending.get(request_id)
        if pending is None:
            return
        done = params.get("done")
        progress = (str(params.get("stage", "")), done if isinstance(done, (int, float)) else None,
                    str(params.get("message", "")))
        pending.progress = progress
        self._events.put(("progress", (pending, progress)))

    def _on_response(self, message: Response) -> None:
        with self._lock:
            pending = self._pending.pop(message.id, None) if message.id is not None else None
        if pending is None:
            if message.error is not None:
                log.warning("backend error not tied to a request: %s", message.error.message)
            return
        if message.error is not None:
            error = message.error.to_exception()
            pending._complete(None, error)
        else:
            pending._complete(message.result or {}, None)
        self._events.put(("done", pending))

    def _on_garbage(self, line: bytes, error: ProtocolError) -> None:
        with self._lock:
            self._stderr.append(f"[invalid message on stdout] {line[:200]!r}")
            handshake = [p for p in self._pending.values() if p.method == "initialize"]
        for pending in handshake:
            with self._lock:
                self._pending.pop(pending.id, None)
            pending._complete(None, ParseError(f"The backend sent invalid data instead of its handshake "
                                                f"({error.message}).", stderr=self.stderr_tail()))
            self._events.put(("done", pending))

    def _on_stdout_closed(self) -> None:
        process = self._process
        assert process is not None
        try:
            status = process.wait(10.0)
        except subprocess.TimeoutExpired:  # closed stdout but still running: it is broken, stop it
            process.kill()
            status = process.wait()
        if len(self._threads) > 1 and self._threads[1].ident is not None:
            self._threads[1].join(2.0)  # let the stderr reader catch the last lines
        elif not self._threaded:
            self._pump_stderr()
        if self._closing:
            error = ServerExitedError("The backend was shut down before answering.")
        else:
            error = ServerExitedError(f"The backend process exited unexpectedly ({_describe_status(status)}).",
                                      data={"status": status}, stderr=self.stderr_tail())
            log.error("%s", error)
        with self._lock:
            self.exit_error = error
        self._fail_pending(error)
        if not self._closing:
            self._events.put(("exit", error))

    def _fail_pending(self, error: BackendError) -> None:
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for request in pending:
            if request._complete(None, error):
                self._events.put(("done", request))

    def _append_stderr(self, line: str) -> None:
        with self._lock:
            self._stderr.append(line)


# The reader threads hold only a weak reference to their client, so a client that is dropped without
# shutdown() is collected and its finalizer kills the process.
def batch_outcomes(result: Mapping[str, Any]) -> list[dict[str, Any] | ExpGestError]:
    """A ``generate_batch`` result split per request: its result dict, or its error rebuilt as its own class."""
    outcomes: list[dict[str, Any] | ExpGestError] = []
    for item in result.get("results", []):
        error = item.get("error") if isinstance(item, dict) else None
        if isinstance(error, dict):
            outcomes.append(ExpGestError.from_wire(int(error.get("code", 0)), str(error.get("message", "")),
                                                   error.get("data") or {}))
        else:
            outcomes.append(dict(item))
    return outcomes


def _stdout_loop(client_ref: weakref.ref[BackendClient], stream: Any) -> None:
    reader = LineReader(stream)
    try:
        while True:
            line = reader.read_line()
            client = client_ref()
            if client is None:
                return
            if line is None:
                break
            try:
                client._handle_line(line)
            except Exception:  # a bug in handling one line must not stop the reader and hang every request
                log.exception("a backend message could not be handled")
            del client
    except (OSError, ValueError) as error:  # pipe closed under us during shutdown
        log.debug("stdout reader stopped: %s", error)
    client = client_ref()
    if client is not None:
        client._on_stdout_closed()


def _stderr_loop(client_ref: weakref.ref[BackendClient], stream: Any) -> None:
    try:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            client = client_ref()
            if client is None:
                return
            client._append_stderr(line)
            del client
            server_log.debug("%s", line)
    except (OSError, ValueError):
        pass


def _describe_status(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Last resort when a client is dropped or the interpreter exits without ``shutdown()``."""
    if process.poll() is None:
        try:
            process.kill()
            process.wait(5.0)
        except (OSError, subprocess.TimeoutExpired):
            pass


__all__ = ["BackendClient", "BackendError", "BackendTimeoutError", "PendingRequest", "DEFAULT_ARGS"]
