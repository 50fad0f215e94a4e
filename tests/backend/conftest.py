"""Fixtures shared by the backend tests."""

from __future__ import annotations

import sys

import pytest

from backend.client import BackendClient
from tests.servers.harness import ROOT, backend_env


@pytest.fixture(scope="module")
def threads() -> bool:
    """The client's mode: reader threads (scripts, batch). ``test_client.py`` also runs thread-free."""
    return True


@pytest.fixture(scope="module")
def client(threads):
    """A real ``python -m backend serve`` through ``BackendClient``, one per test module (test engines plugged in,
    one thread)."""
    backend = BackendClient(sys.executable, env=backend_env(), cwd=str(ROOT), threads=threads)
    backend.start(timeout=120)
    yield backend
    backend.shutdown()
