"""The one error hierarchy of ExpGest: every class has a stable protocol code, a message for the user and
optional details.

Standard library only (the add-on imports it in Blender's Python). An error crosses every boundary as the
same class: the server sends ``{"code", "message", "data"}`` (``to_wire``), the client rebuilds the class
from the code (``from_wire``, as pygls rebuilds its ``JsonRpcException`` subclasses), and the add-on's panel
shows ``message`` and ``code`` from those fields; nothing is parsed back out of text.

Codes follow JSON-RPC 2.0 for protocol failures (-32700 ... -32603), the -320xx server range for domain
failures, and -3209x for failures of the connection that the client raises itself (never on the wire).
``docs/vocabulary.md`` has the table.
"""

from __future__ import annotations

from typing import Any, ClassVar

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
AUDIO_ERROR = -32000
WEIGHTS_ERROR = -32001
CANCELLED = -32002
OUTPUT_ERROR = -32003
ENGINE_ERROR = -32004
DEVICE_ERROR = -32005
FILE_FORMAT_ERROR = -32006
# Client-side: failures of the connection, raised by the client, never sent by the server.
SERVER_EXITED = -32090
TIMEOUT = -32091
VERSION_MISMATCH = -32092
SERVER_NOT_STARTED = -32093

_BY_CODE: dict[int, type[ExpGestError]] = {}


class ExpGestError(Exception):
    """Base of every error ExpGest reports to a user; subclasses set ``code`` and ``title``.

    Args:
        message: one or more full sentences saying what is wrong and what to do.
        data: optional JSON-serialisable details (the protocol's ``error.data``).
        details: optional lines that belong to the message (missing files ...), sent as ``data["details"]``,
            a list, never joined into the message.
        stderr: the last lines of the backend's log when the process failed (client side only).
    """

    code: ClassVar[int] = INTERNAL_ERROR
    title: ClassVar[str] = "error"

    def __init__(self, message: str, *, data: dict[str, Any] | None = None, details: list[str] | None = None,
                 stderr: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.data: dict[str, Any] = dict(data or {})
        if details:
            self.data["details"] = [str(line) for line in details]
        self.stderr = stderr

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            if cls.code in _BY_CODE:
                raise TypeError(f"error code {cls.code} is already used by {_BY_CODE[cls.code].__name__}")
            _BY_CODE[cls.code] = cls

    @property
    def details(self) -> list[str]:
        """The detail lines sent with the message (``data["details"]``), or []."""
        details = self.data.get("details")
        return [str(line) for line in details] if isinstance(details, list) else []

    @property
    def cancelled(self) -> bool:
        """True when the request was cancelled."""
        return self.code == CANCELLED

    def __str__(self) -> str:
        if self.stderr:
            return f"{self.message}\nLast lines of the backend log:\n{self.stderr}"
        return self.message

    def to_wire(self) -> dict[str, Any]:
        """The protocol's ``error`` member: ``{"code", "message", "data"}``."""
        return {"code": self.code, "message": self.message, "data": dict(self.data)}

    @staticmethod
    def from_wire(code: int, message: str, data: dict[str, Any] | None = None, *, stderr: str = "") -> ExpGestError:
        """Rebuild the error the other side raised: the class registered for ``code``.

        An unknown code (a newer server) gives an ``ExpGestError`` that carries that code.
        """
        cls = _BY_CODE.get(code) or ExpGestError
        error = cls.__new__(cls)
        ExpGestError.__init__(error, message, data=data, stderr=stderr)
        if code not in _BY_CODE:
            error.code = code  # type: ignore[misc]  # an instance attribute for a code this side does not know
        error._restore()
        return error

    def with_message(self, message: str) -> ExpGestError:
        """The same error (class, code, data, log) with another message."""
        return ExpGestError.from_wire(self.code, message, self.data, stderr=self.stderr)

    def _restore(self) -> None:
        """Set the subclass's own attributes from ``data`` after ``from_wire``."""


def error_class(code: int) -> type[ExpGestError] | None:
    """The class registered for ``code``, or None."""
    return _BY_CODE.get(code)


def registered_errors() -> dict[int, type[ExpGestError]]:
    """Every code and its class (for documentation and tests)."""
    return dict(_BY_CODE)


class InternalError(ExpGestError):
    """A bug: an unexpected exception in the backend (``data`` carries the traceback)."""

    code = INTERNAL_ERROR
    title = "internal error"


# ---- the protocol ------------------------------------------------------------------------------------

class ProtocolError(ExpGestError):
    """A message that breaks the protocol; becomes an error response with the subclass's code.

    Args:
        message: a full sentence for the user or the script author.
        request_id: the id of the offending request when it could be read, else None.
        data: JSON-ready details (``{"field": "params.id"}`` ...).
    """

    def __init__(self, message: str, *, request_id: int | str | None = None,
                 data: dict[str, Any] | None = None, stderr: str = "") -> None:
        super().__init__(message, data=data, stderr=stderr)
        self.request_id = request_id

    def _restore(self) -> None:
        self.request_id = None


class ParseError(ProtocolError):
    """A line that is not UTF-8 JSON."""

    code = PARSE_ERROR
    title = "parse error"


class InvalidRequestError(ProtocolError):
    """JSON that is not a valid request (no id, no method, unknown members, oversized)."""

    code = INVALID_REQUEST
    title = "invalid request"


class MethodNotFoundError(ProtocolError):
    """A method the server does not have."""

    code = METHOD_NOT_FOUND
    title = "method not found"


class RequestError(ProtocolError):
    """An invalid request field; ``field`` names it (dotted path, e.g. ``audio.start_s``), ``reason`` says
    what is wrong and how to fix it.

    Args:
        field: the field's dotted path.
        reason: what is wrong with it and the fix.
        subject: how the message names the field (default ``Request field '<field>'``).
        request_id: the request's id when the protocol layer raises it.
    """

    code = INVALID_PARAMS
    title = "invalid request field"

    def __init__(self, field: str, reason: str, *, subject: str | None = None,
                 request_id: int | str | None = None) -> None:
        super().__init__(f"{subject or f'Request field {field!r}'}: {reason}", request_id=request_id,
                         data={"field": field})
        self.field = field
        self.reason = reason

    def within(self, prefix: str) -> RequestError:
        """The same error for a field nested in ``prefix`` (``start_s`` in ``text[2]`` -> ``text[2].start_s``)."""
        return RequestError(f"{prefix}.{self.field}" if self.field else prefix, self.reason)

    def _restore(self) -> None:
        super()._restore()
        self.field = str(self.data.get("field", ""))
        self.reason = self.message.split(": ", 1)[-1]


# ---- the domain --------------------------------------------------------------------------------------

class AudioError(ExpGestError):
    """The audio could not be used (missing, unreadable, empty, too long ...)."""

    code = AUDIO_ERROR
    title = "audio error"


class WeightsError(ExpGestError):
    """Model weights are missing, incomplete, mismatched or unsafe."""

    code = WEIGHTS_ERROR
    title = "weights error"


class CancelledError(ExpGestError):
    """The user cancelled the request."""

    code = CANCELLED
    title = "cancelled"

    def __init__(self, message: str = "The generation was cancelled.", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class OutputError(ExpGestError):
    """The result could not be written where the request asked."""

    code = OUTPUT_ERROR
    title = "output error"


class EngineError(ExpGestError):
    """An engine failed for a reason the user can act on."""

    code = ENGINE_ERROR
    title = "engine error"


class DeviceError(ExpGestError):
    """The requested compute device is not available."""

    code = DEVICE_ERROR
    title = "device error"


class FileFormatError(ExpGestError):
    """An input file (a BVH file) is not in the format it claims; the message names the file and the line."""

    code = FILE_FORMAT_ERROR
    title = "file format error"


# ---- the connection (client side) --------------------------------------------------------------------

class ServerExitedError(ExpGestError):
    """The backend process exited (or was shut down) before answering; ``stderr`` has its log."""

    code = SERVER_EXITED
    title = "backend exited"


class BackendTimeoutError(ExpGestError, TimeoutError):
    """A wait ran out of time (the request may still be running)."""

    code = TIMEOUT
    title = "timeout"


class VersionMismatchError(ExpGestError):
    """The backend speaks another protocol major version."""

    code = VERSION_MISMATCH
    title = "version mismatch"


class ServerNotStartedError(ExpGestError):
    """The backend process could not be started (or was not started yet)."""

    code = SERVER_NOT_STARTED
    title = "backend not started"


ERROR_NAMES: dict[int, str] = {code: cls.title for code, cls in _BY_CODE.items()}
