"""Domain errors of the backend, one family, each with a protocol error code and a fix for the user.

Standard library only (the add-on imports this through ``backend.protocol``).
Codes follow JSON-RPC 2.0 for protocol-level failures (-32700 … -32603) and use the -320xx
server range for domain failures.
"""

from __future__ import annotations

from typing import Any

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


class ExpGestError(Exception):
    """Base of every error the backend reports to a user.

    Args:
        message: one or more full sentences saying what is wrong and what to do.
        data: optional JSON-serialisable details (for the protocol's ``error.data``).
    """

    code: int = INTERNAL_ERROR

    def __init__(self, message: str, *, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data or {}


class RequestError(ExpGestError):
    """An invalid request field; ``field`` names it (dotted path, e.g. ``audio.start_s``)."""

    code = INVALID_PARAMS

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"Request field '{field}': {message}", data={"field": field})
        self.field = field


class AudioError(ExpGestError):
    """The audio could not be used (missing, unreadable, empty, too long …)."""

    code = AUDIO_ERROR


class WeightsError(ExpGestError):
    """Model weights are missing, incomplete, mismatched or unsafe."""

    code = WEIGHTS_ERROR


class CancelledError(ExpGestError):
    """The user cancelled the request."""

    code = CANCELLED

    def __init__(self, message: str = "The generation was cancelled.") -> None:
        super().__init__(message)


class OutputError(ExpGestError):
    """The result could not be written where the request asked."""

    code = OUTPUT_ERROR


class EngineError(ExpGestError):
    """An engine failed for a reason the user can act on."""

    code = ENGINE_ERROR


class DeviceError(ExpGestError):
    """The requested compute device is not available."""

    code = DEVICE_ERROR
