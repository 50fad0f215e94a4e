"""Fixtures shared by the backend tests."""

from __future__ import annotations

import sys

import pytest

from backend.client import BackendClient
from tests.servers.harness import ROOT, backend_env


@pytest.fixture(scope="module")
def client():
    """A real ``python -m backend serve`` through ``BackendClient``, one per test module (test engines plugged in,
    one thread)."""
    backend = BackendClient(sys.executable, env=backend_env(), cwd=str(ROOT))
    backend.start(timeout=120)
    yield backend
    backend.shutdown()
