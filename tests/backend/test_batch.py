"""``python -m backend batch``: folders and manifests, failure summary, resume after a kill."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.batch import is_valid_output, read_manifest
from tests.servers.harness import ROOT, assert_valid_npz, full_env, make_tone, temp_files

pytestmark = pytest.mark.e2e


def _batch(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend", "batch", *args], cwd=ROOT, env=full_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def _children(pid: int) -> list[int]:
    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            children.append(int(status.parent.name))
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except OSError:
        return False
    return state != "Z"


def test_folder_batch_then_resume_skips_everything(tmp_path):
    audio = tmp_path / "audio"
    (audio / "sub").mkdir(parents=True)
    for name in ("a.wav", "b.wav", "sub/c.wav"):
        make_tone(audio / name, seconds=1.0)
    (audio / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    first = _batch(str(audio), "--out", str(out), "--recursive", "--fps", "24", "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert sorted(summary["written"]) == ["a.wav", "b.wav", "sub/c.wav"] and summary["failed"] == []
    for name in ("a.npz", "b.npz", "sub/c.npz"):
        assert_valid_npz(out / name, frames=24)
    second = _batch(str(audio), "--out", str(out), "--recursive", "--fps", "24", "--json")
    assert json.loads(second.stdout)["skipped"] == ["a.wav", "b.wav", "sub/c.wav"]
    assert "[3/3]" in second.stderr


def test_folder_files_sharing_a_stem_are_not_skipped_as_done(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    make_tone(audio / "take.flac", seconds=0.5)
    make_tone(audio / "take.wav", seconds=1.0)
    out = tmp_path / "out"
    for _ in range(2):  # the second run must not call take.wav done because take.flac wrote take.npz
        done = _batch(str(audio), "--out", str(out), "--fps", "24", "--json")
        summary = json.loads(done.stdout)
        assert done.returncode == 1 and "take.wav" not in summary["written"] + summary["skipped"], done.stderr
        assert [f["item"] for f in summary["failed"]] == ["take.wav"]
        assert "take.flac" in summary["failed"][0]["error"] and "rename" in summary["failed"][0]["error"]
    assert_valid_npz(out / "take.npz", frames=12)


@pytest.mark.parametrize("case, expected", [
    ("audio file", "use the generate command"),
    ("binary manifest", "not a text manifest"),
    ("out is a file", "Cannot create the output folder"),
])
def test_wrong_source_or_out_is_one_clear_line(tmp_path, case, expected):
    audio = make_tone(tmp_path / "line.wav", seconds=0.5)
    source, out = audio, tmp_path / "out"
    if case == "binary manifest":
        source = tmp_path / "takes.jsonl"
        source.write_bytes(b"\x80\xff\x00 not text")
    elif case == "out is a file":
        source, out = tmp_path, audio
    done = _batch(str(source), "--out", str(out))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().startswith("error:") and expected in done.stderr


def test_manifest_failures_are_summarised_and_do_not_stop_the_batch(tmp_path):
    make_tone(tmp_path / "ok.wav")
    lines = [
        {"audio": "ok.wav", "output": "first.npz", "engine": "_test_sleep", "steps": 1},
        "this line is not json",
        {"audio": "missing.wav", "output": "missing.npz"},
        {"audio": "ok.wav", "output": "crash.npz", "engine": "_test_crash"},
        {"audio": "ok.wav", "output": "bad.npz", "fps": "fast"},
        {"audio": "ok.wav", "output": "last.npz", "engine": "_test_sleep", "steps": 1, "fps": 60},
    ]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("# a comment\n\n" + "\n".join(line if isinstance(line, str) else json.dumps(line)
                                                     for line in lines) + "\n")
    out = tmp_path / "out"
    completed = _batch(str(manifest), "--out", str(out))
    assert completed.returncode == 1, completed.stderr
    assert "2 written, 0 skipped (already done), 4 failed, of 6" in completed.stdout
    failures = completed.stdout.split("Failures:")[1]
    assert "line 4: not valid JSON" in failures
    assert "line 5 (missing.wav)" in failures
    assert "line 6 (crash.wav)" not in failures and "line 6 (ok.wav): The backend process exited" in failures
    assert "line 7 (ok.wav): Request field 'fps'" in failures
    assert_valid_npz(out / "first.npz", frames=30)
    assert_valid_npz(out / "last.npz", frames=60)  # written by a restarted backend after the crash


def test_batch_resumes_after_being_killed(tmp_path):
    make_tone(tmp_path / "line.wav")
    out = tmp_path / "out"
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps({"audio": "line.wav", "output": f"take{i}.npz", "engine": "_test_sleep",
                                            "steps": 5}) + "\n" for i in range(6)))
    batch = subprocess.Popen([sys.executable, "-m", "backend", "batch", str(manifest), "--out", str(out)],
                             cwd=ROOT, env=full_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(out.glob("take*.npz"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    servers = _children(batch.pid)
    batch.send_signal(signal.SIGKILL)
    batch.wait(10)
    done_before = sorted(p.name for p in out.glob("take*.npz"))
    assert 2 <= len(done_before) < 6 and servers
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in servers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in servers), "the batch's backend outlived it"

    resumed = _batch(str(manifest), "--out", str(out), "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert len(summary["skipped"]) == len(done_before) and len(summary["written"]) == 6 - len(done_before)
    for index in range(6):
        assert_valid_npz(out / f"take{index}.npz", frames=30)
    assert temp_files(out) == []


def test_manifest_paths_and_validity_checks(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"audio": {"path": "x/a.wav", "start_s": 1.0}}\n'
                        '{"audio": "/abs/b.wav", "output": "/o/b.npz"}\n'
                        '{"audio": "x/a.wav"}\n[1]\n')
    items = read_manifest(manifest, tmp_path / "out", {"fps": 25.0})
    assert items[0].params["audio"] == {"path": str(tmp_path / "x/a.wav"), "start_s": 1.0}
    assert items[0].output == (tmp_path / "out" / "a.npz").resolve() and items[0].params["fps"] == 25.0
    assert items[1].output == Path("/o/b.npz")
    assert "same output as line 1" in items[2].error
    assert "JSON object" in items[3].error
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 truncated")
    assert not is_valid_output(broken) and not is_valid_output(tmp_path / "absent.npz")
