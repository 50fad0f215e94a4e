"""The server's method registry and its work methods (registered by decorator, as pygls's ``@server.feature``).

Every protocol method is declared exactly once, with ``@method``: its name, its handler, an optional arrival
check (``validate``), whether it is answered at once on the reader thread (``immediate``) or queued for the
worker, and whether ``cancel`` stops it while it runs (``cancellable``). The server dispatches through the
registry and ``initialize`` lists it; ``tests/backend/test_server.py`` checks it against the wire contract
``backend.protocol.METHODS``.

A work handler is ``fn(context: RequestContext, params: dict) -> dict``: it does the work, reports progress
through ``context.progress``, polls ``context.cancel`` and returns the JSON ``result``. It raises
``ExpGestError`` (or ``ProtocolError``) for failures a user can act on; the server turns every exception into
an error response (``backend.server``), so a failing handler never stops it. The immediate methods
(``initialize``, ``cancel``, ``shutdown``) act on the server's queue, so ``backend.server`` declares them, with
handlers ``fn(server, request) -> None`` that send their own response.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .engines.base import CancelToken, ProgressFn
from .errors import CancelledError, EngineError, ExpGestError, RequestError
from .pipeline import check_output_folder
from .protocol import PROTOCOL_VERSION, RequestId
from .vocabulary import GENDERS

Handler = Callable[..., Any]
Validator = Callable[["ServerState", dict[str, Any]], None]


@dataclass(frozen=True)
class MethodSpec:
    """One protocol method as the server runs it.

    Attributes:
        name: the method's name on the wire.
        handler: ``fn(context, params) -> result`` for a queued method; ``fn(server, request) -> None`` for an
            immediate one.
        validate: a cheap check of the params run when the request arrives, before it queues (so an invalid
            request is answered at once, not after the running one, which may take minutes), or None.
        immediate: answered at once on the reader thread (never waits for a generation), else queued and run
            on the worker one at a time in arrival order.
        cancellable: ``cancel`` stops it while it runs (its handler polls ``context.cancel``); a queued
            request is always cancellable.
    """

    name: str
    handler: Handler
    validate: Validator | None = None
    immediate: bool = False
    cancellable: bool = False


_METHODS: dict[str, MethodSpec] = {}


def method(name: str, *, validate: Validator | None = None, immediate: bool = False,
           cancellable: bool = False) -> Callable[[Handler], Handler]:
    """Declare the decorated function as the handler of protocol method ``name`` (see ``MethodSpec``)."""
    def register(function: Handler) -> Handler:
        if name in _METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        _METHODS[name] = MethodSpec(name, function, validate, immediate, cancellable)
        return function
    return register


def get_method(name: str) -> MethodSpec | None:
    """The declaration of method ``name``, or None."""
    return _METHODS.get(name)


def registered_methods() -> tuple[str, ...]:
    """Every declared method's name, in declaration order."""
    return tuple(_METHODS)


@dataclass
class ServerState:
    """What lives as long as the server: loaded engines and the discovered environment.

    Attributes:
        models_dir: the weights folder given to ``serve --models`` (or ``EXPGEST_MODELS``), if any.
    """

    models_dir: str | None = None
    _cache: Any = None
    _info: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cache(self) -> Any:
        """The ``backend.pipeline.EngineCache`` shared by every request (created on first use)."""
        if self._cache is None:
            from .pipeline import EngineCache

            self._cache = EngineCache()
        return self._cache

    def info(self) -> dict[str, Any]:
        """The ``initialize`` result (computed once: importing torch to list devices takes seconds)."""
        with self._lock:
            if self._info is None:
                self._info = _gather_info(self)
            return dict(self._info)


@dataclass
class RequestContext:
    """What a handler gets besides its params.

    Attributes:
        request_id: the id of the request being served.
        progress: ``(stage, done, message)`` callback; the server forwards it as ``progress`` notifications.
        cancel: set when the client cancels this request or the server shuts down.
        state: the server-wide state.
    """

    request_id: RequestId
    progress: ProgressFn
    cancel: CancelToken
    state: ServerState


def _gather_info(state: ServerState) -> dict[str, Any]:
    from .engines.plugins import plugin_engines
    from .environment import gather_info

    info = gather_info()
    engines = [{"name": name, "available": True} for name in info["engines"]]
    if "expgest" not in info["engines"]:
        engines.append({"name": "expgest", "available": False,
                        "reason": "PyTorch and transformers are not installed in the backend's Python."})
    engines += [{"name": name, "available": True, "plugin": True} for name in plugin_engines()]
    models: dict[str, Any] = {"folder": state.models_dir, "found": False, "entries": []}
    if state.models_dir:
        folder = Path(state.models_dir).expanduser()
        if folder.is_dir():
            models["found"] = True
            models["entries"] = sorted(entry.name for entry in folder.iterdir())[:200]
    return {
        "protocol_version": PROTOCOL_VERSION,
        "server_version": __version__,
        "pid": os.getpid(),
        "python": info["python"],
        "executable": sys.executable,
        "engines": engines,
        "devices": info["devices"],
        "packages": info["packages"],
        "models": models,
        "methods": list(registered_methods()),
    }


# ``backend.motion.motion.save_npz`` (and the BVH writer) write ``.<name>.<pid>.tmp`` before renaming.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+\.(?:npz|bvh))\.(?P<pid>\d+)\.tmp$")


def sweep_stale_temp_files(folder: Path) -> list[str]:
    """Remove temporary result files left in ``folder`` by a writer process that no longer exists (a backend
    killed with SIGKILL mid-write). POSIX only: elsewhere probing a process id is not side-effect free.

    Returns:
        The names removed.
    """
    removed: list[str] = []
    if os.name != "posix" or not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMP_NAME.match(entry.name)
        if match is None or int(match["pid"]) == os.getpid():
            continue
        try:
            os.kill(int(match["pid"]), 0)
            continue  # the writer is still running
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue
        try:
            entry.unlink()
            removed.append(entry.name)
        except OSError:
            pass
    return removed


def validate_generate(state: ServerState, params: dict[str, Any]) -> None:
    """The request's fields and its output folder (milliseconds; no audio is read)."""
    from .engines.plugins import split_engine
    from .request import GenerationRequest

    checked, _ = split_engine(params)
    check_output_folder(GenerationRequest.from_dict(checked).output)


@method("generate", validate=validate_generate, cancellable=True)
def generate(context: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Run one generation (``backend.pipeline.run_generation``); the result file is written atomically.

    Args:
        context: the request context.
        params: a ``GenerationRequest`` as JSON (DESIGN.md section 3).

    Returns:
        ``GenerationResult.to_dict()`` plus ``engine_loads``: how many engines this server has constructed
        so far (it does not grow when a request reuses a loaded model).
    """
    from .engines.plugins import SingleEngineCache, split_engine
    from .pipeline import run_generation
    from .request import GenerationRequest

    params, plugin = split_engine(params)
    request = GenerationRequest.from_dict(params)
    check_output_folder(request.output)
    sweep_stale_temp_files(Path(request.output).expanduser().resolve().parent)
    cache = SingleEngineCache(plugin) if plugin is not None else context.state.cache
    result = run_generation(request, progress=context.progress, cancel=context.cancel, cache=cache).to_dict()
    if plugin is not None:
        result["engine"] = plugin
    result["engine_loads"] = cache.loads
    return result


MAX_BATCH_REQUESTS = 64  # one generate_batch; more characters are sent as several
MAX_CLIPS_PER_FORWARD = 16


def _batch_params(params: dict[str, Any]) -> tuple[list[tuple[Any, str | None]], int | str]:
    """The checked ``generate_batch`` params: ([(GenerationRequest, plugin engine or None)], clips_per_forward).

    Raises:
        RequestError: naming the field (``requests[2].audio.path``, ``clips_per_forward`` ...).
    """
    from .engines.plugins import split_engine
    from .request import GenerationRequest

    for key in params:
        if key not in ("requests", "clips_per_forward"):
            raise RequestError(key, "unknown field; generate_batch takes requests and clips_per_forward.")
    items = params.get("requests")
    if not isinstance(items, list) or not items:
        raise RequestError("requests", "expected a non-empty list of generate requests.")
    if len(items) > MAX_BATCH_REQUESTS:
        raise RequestError("requests", f"{len(items)} requests; send at most {MAX_BATCH_REQUESTS} per batch.")
    clips = params.get("clips_per_forward", "auto")
    if clips != "auto" and (not isinstance(clips, int) or isinstance(clips, bool)
                            or not 1 <= clips <= MAX_CLIPS_PER_FORWARD):
        raise RequestError("clips_per_forward", f"expected \"auto\" or a whole number from 1 to "
                                                f"{MAX_CLIPS_PER_FORWARD}, got {clips!r}.")
    checked: list[tuple[Any, str | None]] = []
    outputs: dict[Path, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise RequestError(f"requests[{index}]", "expected a generate request (an object).")
        try:
            fields, plugin = split_engine(item)
            request = GenerationRequest.from_dict(fields)
        except RequestError as error:
            raise error.within(f"requests[{index}]") from None
        output = Path(request.output).expanduser().resolve()
        if output in outputs:
            raise RequestError(f"requests[{index}].output", f"the same file as requests[{outputs[output]}]; "
                                                            "give every request its own output.")
        outputs[output] = index
        checked.append((request, plugin))
    return checked, clips


def validate_generate_batch(state: ServerState, params: dict[str, Any]) -> None:
    """Every request's fields and output folder, distinct outputs, ``clips_per_forward``."""
    for request, _ in _batch_params(params)[0]:
        check_output_folder(request.output)


class _BatchProgress:
    """One progress stream for several clips: the mean of their fractions, the latest clip's message."""

    def __init__(self, progress: ProgressFn, total: int) -> None:
        self._progress = progress
        self._done = [0.0] * total
        self._finished = 0
        self._lock = threading.Lock()

    def clip(self, index: int) -> ProgressFn:
        """The progress callback of clip ``index``."""
        def report(stage: str, done: float | None = None, message: str = "") -> None:
            with self._lock:
                if done is not None and done >= 0:
                    self._done[index] = max(self._done[index], min(1.0, float(done)))
                if stage in ("done", "failed"):  # a request that failed alone counts as finished
                    self._finished += 1
                total = len(self._done)
                text = f"{self._finished}/{total} done · clip {index + 1}: {message or stage}"
                # one stage name for the whole batch: the server sends a new stage at once, and clips interleave
                self._progress(f"generating {total} clips", sum(self._done) / total, text)
        return report


@method("generate_batch", validate=validate_generate_batch, cancellable=True)
def generate_batch(context: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Several generations in one request, window k of up to ``clips_per_forward`` clips in one batched forward.

    Requests for the same engine settings run together (``pipeline.run_generation_batch``: each keeps its own
    seed, conditions, emotion guidance and stitching, so it gets the motion it gets alone); one request's failure
    (unreadable audio, an unwritable output) is its own item and the others go on. Engines without batched
    sampling (procedural, plugins) run their requests one after another. ``clips_per_forward`` ``"auto"`` is
    the engine's own choice (``ExpGestEngine.auto_clips_per_forward``: 8 on a CUDA GPU or a CPU with 2+ threads,
    1 with a single thread).

    Args:
        context: the request context; a cancel stops the whole batch (answered ``cancelled``).
        params: ``{"requests": [GenerationRequest as JSON, ...], "clips_per_forward": "auto" | 1 … 16}``.

    Returns:
        ``{"results": [GenerationResult.to_dict() or {"error": {code, message, data}} per request, in order],
        "forward_batch_sizes": [clips in each batched forward], "engine_loads": int}``.
    """
    from .engines.plugins import SingleEngineCache
    from .pipeline import engine_key, run_generation_batch

    checked, clips = _batch_params(params)
    for request, _ in checked:
        check_output_folder(request.output)
    for folder in {Path(request.output).expanduser().resolve().parent for request, _ in checked}:
        sweep_stale_temp_files(folder)
    groups: dict[tuple, list[int]] = {}
    for index, (request, plugin) in enumerate(checked):
        groups.setdefault((plugin, engine_key(request)), []).append(index)
    progress = _BatchProgress(context.progress, len(checked))
    results: list[dict[str, Any]] = [{} for _ in checked]
    sizes: list[int] = []
    for (plugin, _), members in groups.items():
        cache = SingleEngineCache(plugin) if plugin is not None else context.state.cache
        requests = [checked[index][0] for index in members]
        try:
            engine = cache.get(requests[0])
            per_forward = clips if isinstance(clips, int) else getattr(engine, "auto_clips_per_forward", lambda: 1)()
            outcomes = run_generation_batch(requests, progress=[progress.clip(index) for index in members],
                                            cancel=context.cancel, cache=cache, clips_per_forward=per_forward)
            sizes += getattr(engine, "forward_batch_sizes", [])
        except ExpGestError as error:  # the shared engine did not load: every request of the group fails
            outcomes = [error] * len(members)
        for index, outcome in zip(members, outcomes, strict=True):
            if isinstance(outcome, CancelledError) or context.cancel.cancelled:
                raise CancelledError()
            if isinstance(outcome, ExpGestError):
                results[index] = {"error": outcome.to_wire()}
            else:
                results[index] = outcome.to_dict()
                if plugin is not None:
                    results[index]["engine"] = plugin
    context.progress("done", 1.0, "")
    return {"results": results, "forward_batch_sizes": sizes, "engine_loads": context.state.cache.loads}


@method("character", cancellable=True)
def character(context: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Rest skeleton and optionally a skinned mesh for a gender and body shape (DESIGN.md section 4), written
    to a ``.npz`` by ``backend.character.build_character``.

    Args:
        context: the request context.
        params: ``{"output": str (required), "gender": "neutral"|"male"|"female", "betas": [float, ...],
            "smplx_dir": str|None, "with_mesh": bool (default true)}``.

    Returns:
        What ``build_character`` returns: ``{"output", "num_joints", "num_vertices", "source", "gender", "betas"}``.
    """
    allowed = ("gender", "betas", "smplx_dir", "with_mesh", "output")
    for key in params:
        if key not in allowed:
            raise RequestError(key, f"unknown field; character takes {', '.join(allowed)}.")
    gender = params.get("gender", "neutral")
    if gender not in GENDERS:
        raise RequestError("gender", f"must be one of {', '.join(GENDERS)}, got {gender!r}.")
    betas = params.get("betas")
    if betas is not None and (not isinstance(betas, list) or not all(
            isinstance(b, (int, float)) and not isinstance(b, bool) for b in betas)):
        raise RequestError("betas", "expected a list of numbers (SMPL-X shape coefficients), or null.")
    smplx_dir = params.get("smplx_dir")
    if smplx_dir is not None and (not isinstance(smplx_dir, str) or not smplx_dir.strip()):
        raise RequestError("smplx_dir", "expected the folder of your SMPL-X model files, or null.")
    with_mesh = params.get("with_mesh", True)
    if not isinstance(with_mesh, bool):
        raise RequestError("with_mesh", "expected true or false.")
    output = params.get("output")
    if not isinstance(output, str) or not output.strip():
        raise RequestError("output", "missing; give the path of the character .npz to write.")
    check_output_folder(output)
    try:
        from .character import build_character
    except ImportError as error:
        raise EngineError(f"Building characters is not available in this backend ({error}). Update the "
                          "add-on's backend, or add a character with the built-in skeleton.") from None
    context.progress("building character", 0.0, gender)
    context.cancel.check()
    result = build_character(gender, None if betas is None else [float(b) for b in betas], smplx_dir, with_mesh,
                             output=output)
    context.progress("done", 1.0, "")
    return dict(result)
