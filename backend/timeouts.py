"""The shutdown budget: how long each side waits while a backend process stops (standard library only).

One place for these numbers, read by the server (``backend.server``), the client (``backend.client``) and
the add-on (``blender_addon.operators`` / ``jobs``). The client's escalation (HOUSE_STYLE 9) is
``shutdown`` request → wait ``SHUTDOWN_WAIT_S`` (or ``QUICK_STOP_S``) → SIGTERM → wait ``TERMINATE_WAIT_S``
→ SIGKILL → wait ``KILL_WAIT_S``. The server, told to stop, cancels its running request and waits up to
``DRAIN_S`` for it to answer; ``SHUTDOWN_WAIT_S`` is longer, so a polite stop is never escalated while the
server is still draining a request that honours its cancel.
"""

from __future__ import annotations

DRAIN_S = 3.0
"""Server: how long a stopping server waits for the running request to answer (cancel is checked between
denoising steps, well under a second)."""

SHUTDOWN_WAIT_S = 5.0
"""Client: how long a normal shutdown (add-on unregister, Blender exit) waits after the ``shutdown`` request
before it sends SIGTERM; longer than ``DRAIN_S``."""

QUICK_STOP_S = 1.0
"""Client: the wait before SIGTERM when a backend is dropped rather than retired (its run was abandoned, it is
replaced by another interpreter, it was started for one request, or its handshake failed); the process
may be mid-request."""

TERMINATE_WAIT_S = 2.0
"""Client: how long after SIGTERM before SIGKILL."""

KILL_WAIT_S = 5.0
"""Client: how long to wait for the process to be reaped after SIGKILL."""

