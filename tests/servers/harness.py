"""Helpers for the backend end-to-end tests: environments, a raw line-level server, short audio, checks."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SERVERS = Path(__file__).resolve().parent
ENGINE_PLUGINS = "EXPGEST_ENGINE_PLUGINS"  # backend.engines.plugins.ENV_PLUGINS
TEST_ENGINES = SERVERS / "engines.py"  # _test_sleep, _test_quiet, _test_raise, _test_crash


def backend_env(**extra: str) -> dict[str, str]:
    """Variables for a spawned backend: this worktree's code first, the test engines plugged in, one thread."""
    env = {"PYTHONPATH": str(ROOT), ENGINE_PLUGINS: str(TEST_ENGINES),
           "OMP_NUM_THREADS": "1", "EXPGEST_TEST_STEP_S": "0.1"}
    env.update(extra)
    return env


def full_env(**extra: str) -> dict[str, str]:
    """``os.environ`` with ``backend_env`` on top (for ``subprocess`` calls)."""
    env = dict(os.environ)
    env.update(backend_env(**extra))
    return env


def make_tone(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """A short speech-like tone burst as a 16-bit wav."""
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    signal = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    soundfile.write(str(path), signal.astype(np.float32), rate, subtype="PCM_16")
    return path


class RawServer:
    """``python -m backend serve`` driven line by line (no client), for protocol-level tests."""

    def __init__(self, remove: tuple[str, ...] = (), **env: str) -> None:
        environment = full_env(**env)
        for name in remove:
            environment.pop(name, None)
        self.process = subprocess.Popen([sys.executable, "-m", "backend", "serve"], cwd=ROOT, env=environment,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr: list[str] = []
        self.raw_lines: list[bytes] = []
        self.unclaimed: dict[Any, dict[str, Any]] = {}  # responses skipped while waiting for another
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        for line in iter(self.process.stdout.readline, b""):
            self.raw_lines.append(line)
            self.messages.put(json.loads(line))  # a non-JSON line fails the test through the missing message

    def _read_stderr(self) -> None:
        for line in iter(self.process.stderr.readline, b""):
            self.stderr.append(line.decode("utf-8", "replace"))

    def send_raw(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, request_id: Any, method: str, params: dict | None = None) -> None:
        self.send_raw(json.dumps({"id": request_id, "method": method, "params": params or {}}).encode() + b"\n")

    def next(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next message (response or notification)."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s; stderr:\n{''.join(self.stderr[-20:])}") from None

    def response(self, request_id: Any, timeout: float = 10.0) -> dict[str, Any]:
        """Skip notifications (and other responses) until the response to ``request_id``."""
        if request_id in self.unclaimed:
            return self.unclaimed.pop(request_id)
        deadline = time.monotonic() + timeout
        while True:
            message = self.next(max(0.01, deadline - time.monotonic()))
            if "method" not in message:
                if message.get("id") == request_id:
                    return message
                self.unclaimed[message.get("id")] = message

    def wait_progress(self, request_id: Any, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for a progress notification of ``request_id`` that is past "starting"."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.next(max(0.01, deadline - time.monotonic()))
            if message.get("method") == "progress" and message["params"]["id"] == request_id \
                    and message["params"]["stage"].startswith("denoising"):
                return message

    def close(self) -> int:
        if self.process.poll() is None:
            self.process.kill()
        status = self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                stream.close()
            except OSError:
                pass
        return status


def generate_params(audio: Path, output: Path, **extra: Any) -> dict[str, Any]:
    return {"audio": {"path": str(audio)}, "output": str(output), **extra}


def temp_files(folder: Path) -> list[str]:
    """Names in ``folder`` that look like temporary or probe files."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


def assert_valid_npz(path: Path, frames: int | None = None) -> None:
    from backend.motion.motion import load_npz

    motion = load_npz(path)
    assert motion.num_frames > 0
    if frames is not None:
        assert motion.num_frames == frames
