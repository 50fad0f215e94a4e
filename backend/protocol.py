"""The backend's stdio protocol (DESIGN.md section 4): message types, error codes, (de)serialisation, validation.

Standard library only: Blender's Python imports this module (through ``backend.client``) without torch.

Wire format (framing lives in ``backend.transport``): one JSON object per line, UTF-8, ``\\n``-terminated,
at most ``MAX_MESSAGE_BYTES`` per line. The envelope follows JSON-RPC 2.0 without the ``"jsonrpc"`` member:

- request (client → server): ``{"id": 7, "method": "generate", "params": {...}}``; ``id`` is an integer or a
  non-empty string, unique among the client's open requests.
- response (server → client): ``{"id": 7, "result": {...}}`` or
  ``{"id": 7, "error": {"code": -32602, "message": "...", "data": {...}}}``; ``id`` is null when the
  request could not be read (malformed JSON, oversized line).
- notification (server → client): ``{"method": "progress", "params": {"id", "stage", "done", "message"}}``.

Methods: ``initialize``, ``generate``, ``generate_batch``, ``character``, ``cancel``, ``shutdown`` (``METHODS``).
``initialize``, ``cancel`` and ``shutdown`` are answered at once; ``generate``, ``generate_batch`` and
``character`` run one at a time in arrival order. Error codes: JSON-RPC's for protocol failures, the
``backend.errors`` codes for domain failures, and a few client-side codes (``SERVER_EXITED`` …) that never
travel on the wire.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from .errors import (
    ERROR_NAMES,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SERVER_EXITED,
    SERVER_NOT_STARTED,
    TIMEOUT,
    VERSION_MISMATCH,
    ExpGestError,
    InvalidRequestError,
    MethodNotFoundError,
    ParseError,
    ProtocolError,
    RequestError,
)

# "MAJOR.MINOR": a client accepts a server with the same MAJOR; MINOR adds optional fields only.
PROTOCOL_VERSION = "1.0"
# The longest line (one message, without its newline) either side accepts.
MAX_MESSAGE_BYTES = 1024 * 1024

# Methods the server answers at once on its reader thread (they must never wait for a generation).
CONTROL_METHODS: tuple[str, ...] = ("initialize", "cancel", "shutdown")
# Methods that run on the worker, one at a time, in arrival order.
WORK_METHODS: tuple[str, ...] = ("generate", "generate_batch", "character")
METHODS: tuple[str, ...] = CONTROL_METHODS + WORK_METHODS
PROGRESS = "progress"

RequestId = int | str


@dataclass(frozen=True)
class ErrorObject:
    """The ``error`` member of a response."""

    code: int
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"code", "message", "data"}``."""
        return {"code": self.code, "message": self.message, "data": self.data}

    def to_exception(self, stderr: str = "") -> ExpGestError:
        """The error the server raised, rebuilt as its class from ``code`` (``backend.errors``)."""
        return ExpGestError.from_wire(self.code, self.message, self.data, stderr=stderr)


@dataclass(frozen=True)
class Request:
    """A client → server request."""

    id: RequestId
    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "method": self.method, "params": self.params}


@dataclass(frozen=True)
class Response:
    """A server → client answer: exactly one of ``result`` and ``error`` is set."""

    id: RequestId | None
    result: dict[str, Any] | None = None
    error: ErrorObject | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"id": self.id, "error": self.error.to_dict()}
        return {"id": self.id, "result": self.result if self.result is not None else {}}


@dataclass(frozen=True)
class Notification:
    """A server → client message that needs no answer (``progress``)."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "params": self.params}


Message = Request | Response | Notification


def encode_message(message: Message) -> bytes:
    """Serialise one message as a single ASCII line ending in ``\\n``.

    ``ensure_ascii`` escapes every non-ASCII character, so no byte of the payload can be a newline or a
    Unicode line separator and the framing stays one message per line.

    Raises:
        ValueError: the message holds NaN/infinite numbers or is longer than ``MAX_MESSAGE_BYTES``.
    """
    text = json.dumps(message.to_dict(), ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    data = text.encode("ascii")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(data)} bytes exceeds the protocol limit of {MAX_MESSAGE_BYTES}")
    return data + b"\n"


def decode_json(line: bytes) -> Any:
    """Parse one line (without or with its newline) as JSON.

    Raises:
        ProtocolError: ``PARSE_ERROR`` for invalid UTF-8, invalid JSON, NaN/Infinity or over-deep nesting.
    """
    if len(line.rstrip(b"\r\n")) > MAX_MESSAGE_BYTES:
        raise InvalidRequestError(f"Message longer than {MAX_MESSAGE_BYTES} bytes; "
                                             "send files by path, never their content.")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ParseError(f"Message is not UTF-8 text ({error.reason} at byte {error.start}); "
                                         "send one JSON object per line.") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise ParseError(f"Message is not valid JSON ({_short(error)}); "
                                         "send one JSON object per line.") from None


def parse_request(line: bytes) -> Request:
    """Decode and validate one client → server line.

    Returns:
        The request, its ``params`` an object (``{}`` when omitted) that ``validate_params`` accepted.

    Raises:
        ProtocolError: ``PARSE_ERROR``, ``INVALID_REQUEST`` (not an object, bad id, no method),
            ``METHOD_NOT_FOUND`` or ``INVALID_PARAMS``; ``request_id`` is set whenever the id was readable.
    """
    payload = decode_json(line)
    if not isinstance(payload, dict):
        raise InvalidRequestError(f"Expected a JSON object, got {_json_type(payload)}; "
                                             "send {\"id\": 1, \"method\": \"initialize\", \"params\": {}}.")
    request_id = payload.get("id")
    if not is_valid_id(request_id):
        raise InvalidRequestError("Every request needs an 'id': an integer or a non-empty string "
                                             f"of at most 200 characters, got {_describe(request_id)}.",
                            data={"field": "id"})
    unknown = sorted(str(key) for key in payload if key not in ("id", "method", "params", "jsonrpc"))
    if unknown:
        raise InvalidRequestError(f"Unknown member(s) {', '.join(unknown)}; a request has only "
                                             "id, method and params.", request_id=request_id,
                            data={"field": unknown[0]})
    method = payload.get("method")
    if not isinstance(method, str) or not method:
        raise InvalidRequestError("Every request needs a 'method' string; "
                                             f"methods are {', '.join(METHODS)}.",
                            request_id=request_id, data={"field": "method"})
    if method not in METHODS:
        raise MethodNotFoundError(f"Unknown method {method[:100]!r}; methods are {', '.join(METHODS)}.",
                            request_id=request_id, data={"method": method[:100]})
    params = payload.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RequestError("params", f"must be a JSON object, got {_json_type(params)}.", subject="'params'",
                           request_id=request_id)
    validate_params(method, params, request_id)
    return Request(id=request_id, method=method, params=params)


def validate_params(method: str, params: dict[str, Any], request_id: RequestId | None = None) -> None:
    """Check the params of the control methods; ``generate`` and ``character`` params are checked by their
    handlers (``GenerationRequest.from_dict`` names the field).

    Raises:
        RequestError: ``INVALID_PARAMS`` naming the field.
    """
    def fail(name: str, message: str) -> RequestError:
        return RequestError(name, message, subject=f"Param '{name}' of {method}", request_id=request_id)

    if method == "initialize":
        for key in params:
            if key not in ("protocol_version", "client"):
                raise fail(key, "unknown; initialize takes protocol_version and client.")
        version = params.get("protocol_version")
        if version is not None and (not isinstance(version, str) or parse_version(version) is None):
            raise fail("protocol_version", f"expected a \"MAJOR.MINOR\" string such as {PROTOCOL_VERSION!r}.")
        if "client" in params and not isinstance(params["client"], str):
            raise fail("client", "expected a string naming the client.")
    elif method == "cancel":
        for key in params:
            if key != "id":
                raise fail(key, "unknown; cancel takes only the id of the request to stop.")
        if "id" not in params:
            raise fail("id", "missing; give the id of the request to cancel.")
        if not is_valid_id(params["id"]):
            raise fail("id", f"expected an integer or a string, got {_describe(params['id'])}.")
    elif method == "shutdown":
        if params:
            raise fail(sorted(params)[0], "unknown; shutdown takes no params.")


def is_valid_id(value: Any) -> TypeGuard[RequestId]:
    """True for the ids a request may carry: an int (not a bool) or a non-empty string of ≤ 200 characters."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and 0 < len(value) <= 200


def parse_version(version: str) -> tuple[int, int] | None:
    """``"1.0"`` → ``(1, 0)``; None when it is not ``MAJOR.MINOR``."""
    parts = version.split(".")
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None
    return int(parts[0]), int(parts[1])


def is_compatible(server_version: str, client_version: str = PROTOCOL_VERSION) -> bool:
    """True when both sides speak the same MAJOR version."""
    server = parse_version(server_version) if isinstance(server_version, str) else None
    client = parse_version(client_version)
    return server is not None and client is not None and server[0] == client[0]


def parse_server_message(line: bytes) -> Response | Notification:
    """Decode one server → client line (used by the client's reader thread).

    Raises:
        ProtocolError: the line is not a response or a notification.
    """
    payload = decode_json(line)
    if not isinstance(payload, dict):
        raise InvalidRequestError(f"Server sent {_json_type(payload)}, not a JSON object.")
    if "method" in payload:
        method, params = payload["method"], payload.get("params", {})
        if not isinstance(method, str) or not isinstance(params, dict):
            raise InvalidRequestError("Server sent a notification without a method name or params object.")
        return Notification(method=method, params=params)
    request_id = payload.get("id")
    if request_id is not None and not is_valid_id(request_id):
        raise InvalidRequestError(f"Server sent a response with an invalid id {_describe(request_id)}.")
    if "error" in payload:
        error = payload["error"]
        if not isinstance(error, dict) or not isinstance(error.get("code"), int) \
                or not isinstance(error.get("message"), str):
            raise InvalidRequestError("Server sent an error without an integer code and a message.")
        data = error.get("data")
        return Response(id=request_id, error=ErrorObject(error["code"], error["message"],
                                                         data if isinstance(data, dict) else {}))
    if "result" in payload:
        result = payload["result"]
        if not isinstance(result, dict):
            raise InvalidRequestError(f"Server sent a result that is {_json_type(result)}, not an object.")
        return Response(id=request_id, result=result)
    raise InvalidRequestError("Server sent an object that is neither a response nor a notification.")


def progress_notification(request_id: RequestId, stage: str, done: float | None, message: str = "") -> Notification:
    """The ``progress`` notification for request ``request_id``.

    Args:
        request_id: the id of the running request.
        stage: short phrase a user understands ("denoising window 3/14").
        done: fraction of the whole request in [0, 1], or None when unknown.
        message: optional detail.
    """
    if done is not None:
        done = float(done)
        done = min(1.0, max(0.0, done)) if math.isfinite(done) else None
    return Notification(PROGRESS, {"id": request_id, "stage": str(stage), "done": done, "message": str(message)})


def error_response(request_id: RequestId | None, code: int, message: str,
                   data: dict[str, Any] | None = None) -> Response:
    """A response carrying ``error {code, message, data}``."""
    return Response(id=request_id, error=ErrorObject(code, message, data or {}))


def error_response_for(request_id: RequestId | None, error: ExpGestError) -> Response:
    """The error response that carries ``error`` (its class's code, its message, its data)."""
    wire = error.to_wire()
    return Response(id=request_id, error=ErrorObject(wire["code"], wire["message"], wire["data"]))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (int, float, str, bool, type(None))) else _json_type(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."


__all__ = [
    "CONTROL_METHODS", "ERROR_NAMES", "INTERNAL_ERROR", "INVALID_PARAMS", "INVALID_REQUEST", "MAX_MESSAGE_BYTES",
    "METHODS", "METHOD_NOT_FOUND", "PARSE_ERROR", "PROGRESS", "PROTOCOL_VERSION", "SERVER_EXITED",
    "SERVER_NOT_STARTED", "TIMEOUT", "VERSION_MISMATCH", "WORK_METHODS", "ErrorObject", "InvalidRequestError",
    "Message", "MethodNotFoundError", "Notification", "ParseError", "ProtocolError", "Request", "RequestError",
    "RequestId", "Response", "decode_json", "encode_message", "error_response", "error_response_for",
    "is_compatible", "is_valid_id", "parse_request", "parse_server_message", "parse_version",
    "progress_notification", "validate_params",
]
