"""The errors of the ``models`` layer (networks and weight loading); standard library only.

``models`` sits below ``backend`` and never imports it. The backend translates these into its own domain
errors (with protocol codes) where it calls into ``models``: ``backend.model_errors.translated``.
"""

from __future__ import annotations

from typing import Any


class ModelError(Exception):
    """Base of the errors a user can act on, raised by ``models``.

    Args:
        message: one or more full sentences saying what is wrong and what to do.
        data: optional JSON-serialisable details (e.g. ``{"path": ...}``).
        details: optional lines listing the particulars (e.g. each missing file); kept as ``data["details"]``,
            which the backend's errors carry to the panel as a list.
    """

    def __init__(self, message: str, *, data: dict[str, Any] | None = None,
                 details: list[str] | tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = dict(data or {})
        if details:
            self.data["details"] = [str(line) for line in details]


class WeightsError(ModelError):
    """Model weights are missing, incomplete, mismatched or unsafe."""


class AudioError(ModelError):
    """The audio cannot be used by an encoder (too short, not mono …)."""
