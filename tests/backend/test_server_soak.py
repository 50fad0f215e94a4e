"""Soak: 200 sequential short requests on the procedural engine through one server.

After a warm-up of 20 requests the server's resident memory may grow by less than 10 %, and its open
file descriptors, its threads, the client's threads and descriptors, and temporary files must not grow at all.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from backend.client import BackendClient
from tests.servers.harness import ROOT, assert_valid_npz, backend_env, make_tone

pytestmark = pytest.mark.e2e

REQUESTS = 200
WARM_UP = 20


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _count(path: str) -> int:
    return len(os.listdir(path))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_two_hundred_requests_leak_nothing(tmp_path):
    audio = make_tone(tmp_path / "short.wav", seconds=0.5)
    server_tmp = tmp_path / "server-tmp"
    server_tmp.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    client_threads = threading.active_count()
    client_fds = _count("/proc/self/fd")
    client = BackendClient(sys.executable, env=backend_env(TMPDIR=str(server_tmp)), cwd=str(ROOT))
    client.start(timeout=120)
    pid = client.pid
    stages: list[str] = []
    baseline = {}
    try:
        for index in range(REQUESTS):
            params = {"audio": str(audio), "output": str(out / f"r{index % 10}.npz"), "seed": index}
            result = client.generate(params, on_progress=lambda stage, done, message: stages.append(stage)).result(60)
            assert result["frames"] == 15 and result["engine_loads"] == 1
            if index + 1 == WARM_UP:
                baseline = {"rss": _rss_kib(pid), "fds": _count(f"/proc/{pid}/fd"),
                            "threads": _count(f"/proc/{pid}/task")}
        final = {"rss": _rss_kib(pid), "fds": _count(f"/proc/{pid}/fd"), "threads": _count(f"/proc/{pid}/task")}
    finally:
        status = client.shutdown()
    assert status == 0
    assert final["rss"] < 1.10 * baseline["rss"], (baseline, final)
    assert final["fds"] == baseline["fds"] and final["threads"] == baseline["threads"], (baseline, final)
    assert stages.count("writing") == REQUESTS
    assert sorted(p.name for p in out.iterdir()) == [f"r{i}.npz" for i in range(10)]
    assert_valid_npz(out / "r9.npz", frames=15)
    assert list(server_tmp.iterdir()) == []
    assert threading.active_count() == client_threads
    assert _count("/proc/self/fd") == client_fds
