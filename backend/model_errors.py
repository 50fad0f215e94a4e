"""The boundary between ``backend`` and ``models``: model errors become backend domain errors, once.

``models`` raises ``models.errors.WeightsError`` / ``AudioError`` (it never imports ``backend``); code of the
backend that calls into ``models`` runs it inside ``translated()``, so the server, the CLI and the batch
runners see ``backend.errors`` types with their protocol codes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .errors import AudioError, ExpGestError, WeightsError


def translate(error: BaseException) -> ExpGestError | None:
    """The backend error for a ``models.errors.ModelError`` (None for any other exception).

    Args:
        error: any exception.

    Returns:
        A ``backend.errors.AudioError`` or ``WeightsError`` with the same message and data, or None.
    """
    from models.errors import AudioError as ModelAudioError
    from models.errors import ModelError

    if not isinstance(error, ModelError):
        return None
    kind = AudioError if isinstance(error, ModelAudioError) else WeightsError
    return kind(error.message, data=dict(error.data))


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Run a block that calls into ``models``; a ``ModelError`` leaves it as the matching backend error."""
    try:
        yield
    except Exception as error:
        backend_error = translate(error)
        if backend_error is None:
            raise
        raise backend_error from None
