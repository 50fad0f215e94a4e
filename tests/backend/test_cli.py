"""The CLI as a user runs it: a real subprocess, real speech, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from backend.motion.bvh import read_bvh
from backend.motion.motion import load_npz


def run_cli(repo_root, *args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(repo_root), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.e2e
@pytest.mark.parametrize("fps", [23.976, 30])
def test_generate_npz_has_exact_frames(repo_root, speech_wav, tmp_path, fps):
    out = tmp_path / "line.npz"
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(out), "--fps", str(fps),
                   "--emotion", "happiness", "--seed", "4", "--start", "0.5", "--end", "4.5", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    motion = load_npz(out)
    assert motion.num_frames == summary["frames"] == round(4.0 * fps)
    assert motion.fps == pytest.approx(fps)
    assert np.abs(motion.poses).max() > 0.05  # it moves
    assert "reading audio" in done.stderr and "writing" in done.stderr  # progress on stderr, not stdout


@pytest.mark.e2e
def test_generate_bvh(repo_root, speech_wav, tmp_path):
    out = tmp_path / "line.bvh"
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(out), "--fps", "25", "--end", "2")
    assert done.returncode == 0, done.stderr
    bvh = read_bvh(out)
    assert len(bvh.names) == 55 and bvh.frames.shape[0] == 50


@pytest.mark.e2e
@pytest.mark.parametrize("make, expected", [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_bytes(b"not audio at all" * 100), "audio"),
    (lambda p: p.write_bytes(b""), "empty"),
])
def test_bad_audio_is_one_clear_line(repo_root, tmp_path, make, expected):
    audio = tmp_path / "bad.wav"
    make(audio)
    out = tmp_path / "out.npz"
    done = run_cli(repo_root, "generate", str(audio), "-o", str(out))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and expected in error_lines[0].lower()
    assert not out.exists()


@pytest.mark.e2e
def test_invalid_option_names_the_field(repo_root, speech_wav, tmp_path):
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(tmp_path / "o.npz"), "--emotion", "joy")
    assert done.returncode == 2 and "emotion" in done.stderr and "happiness" in done.stderr
    done = run_cli(repo_root, "generate", str(speech_wav), "-o", str(tmp_path / "o.npz"), "--text", "nonsense")
    assert done.returncode == 2 and "START-END:TEXT" in done.stderr


@pytest.mark.e2e
def test_info(repo_root):
    done = run_cli(repo_root, "info", "--json")
    assert done.returncode == 0
    info = json.loads(done.stdout)
    assert "procedural" in info["engines"] and "cpu" in info["devices"]


def test_importing_backend_does_not_import_torch(repo_root):
    code = ("import sys, backend, backend.client, backend.protocol, backend.request; "
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(repo_root)))
    assert done.returncode == 0, done.stderr
