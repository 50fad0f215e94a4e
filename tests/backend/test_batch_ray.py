"""``python -m backend batch … --ray``: the batch on a real single-node Ray cluster (2 CPUs, started once here).

The batch runs in this process through ``backend.cli.main`` (which then joins the cluster this module started),
except for Ctrl-C, which is sent to a real ``python -m backend batch --ray ADDRESS`` process joining the same
cluster. Workers are killed by pid, as an out-of-memory killer or an operator would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from backend.batch import LEDGER_NAME
from backend.cli import main
from tests.backend.audio_signals import RATE, make_bursts
from tests.servers.harness import ENGINE_PLUGINS, ROOT, TEST_ENGINES, assert_valid_npz, full_env, temp_files

pytestmark = pytest.mark.e2e

_ENV = {ENGINE_PLUGINS: str(TEST_ENGINES), "EXPGEST_TEST_STEP_S": "0.1", "OMP_NUM_THREADS": "1"}


def _ray_descendants(pid: int) -> list[int]:
    """Live processes under ``pid`` that belong to Ray (raylet, GCS, workers, log monitor …)."""
    parents: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            state = fields.get("State", "")
        except OSError:
            continue
        if not state.startswith("Z"):
            parents[int(status.parent.name)] = int(fields.get("PPid", "0").strip())
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    ray_processes = []
    for child in found:
        try:
            if b"ray" in Path(f"/proc/{child}/cmdline").read_bytes():
                ray_processes.append(child)
        except OSError:
            continue
    return ray_processes


def _line_workers(busy: bool = False) -> list[int]:
    """Pids of the batch's Ray actors (Ray titles them ``ray::LineWorker``, ``ray::LineWorker.generate`` at work)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::LineWorker") and (not busy or title.startswith("ray::LineWorker.generate")):
            pids.append(int(cmdline.parent.name))
    return pids


@pytest.fixture(scope="module")
def cluster():
    """A local single-node cluster with 2 CPUs; shut down afterwards, leaving no process behind."""
    ray = pytest.importorskip("ray")
    saved = {name: os.environ.get(name) for name in _ENV}
    os.environ.update(_ENV)  # the cluster's processes inherit them
    # one declared GPU (Ray schedules declared GPUs like real ones; torch finds none, so `device auto` stays on
    # the CPU): the batch's default is then one worker per GPU, and --gpus-per-worker 0.5 puts two on it
    context = ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                       runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), **_ENV}})
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        deadline = time.monotonic() + 20
        while _ray_descendants(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _ray_descendants(os.getpid()) == [], "the Ray cluster left processes behind"


def _speech(path: Path, seconds: float, seed: int) -> Path:
    import soundfile

    onsets = tuple(np.arange(0.15, seconds - 0.2, 0.35))
    soundfile.write(str(path), make_bursts(onsets, seconds=seconds, seed=seed), RATE, subtype="PCM_16")
    return path


def _ray_batch(capsys, source: Path, out: Path, *args: str) -> tuple[int, dict, str]:
    code = main(["batch", str(source), "--out", str(out), "--ray", "--json", *args])
    captured = capsys.readouterr()
    # the summary is the last line: Ray's printing thread outlives a batch that joined this process's cluster and
    # may still print a raylet message (the CLI's own process keeps stdout clean, see the Ctrl-C test)
    return code, json.loads(captured.out.strip().splitlines()[-1]), captured.err


def _local_batch(source: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend", "batch", str(source), "--out", str(out), "--json", *args],
                          cwd=ROOT, env=full_env(), capture_output=True, text=True, timeout=120)


def _commits(out: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in (out / LEDGER_NAME).read_text().splitlines():
        entry = json.loads(line)
        if "sha256" in entry:
            counts[entry["output"]] = counts.get(entry["output"], 0) + 1
    return counts


def _sleep_manifest(folder: Path, count: int, steps: int) -> Path:
    _speech(folder / "line.wav", 1.0, seed=0)
    manifest = folder / "jobs.jsonl"
    manifest.write_text("".join(json.dumps({"audio": "line.wav", "output": f"take{i}.npz", "engine": "_test_sleep",
                                            "steps": steps}) + "\n" for i in range(count)))
    return manifest


def test_ray_batch_is_byte_identical_to_the_local_batch_and_a_rerun_skips_everything(cluster, tmp_path, capsys):
    audio = tmp_path / "lines"
    audio.mkdir()
    names = []
    for index, seconds in enumerate((1.0, 1.4, 1.8, 1.2)):
        _speech(audio / f"line{index}.wav", seconds, seed=index)
        names.append(f"line{index}.npz")
    local = _local_batch(audio, tmp_path / "local", "--seed", "5", "--emotion", "happiness")
    assert local.returncode == 0, local.stderr

    code, summary, err = _ray_batch(capsys, audio, tmp_path / "ray", "--seed", "5", "--emotion", "happiness",
                                    "--gpus-per-worker", "0.5")
    assert code == 0, err
    assert sorted(summary["written"]) == [f"line{i}.wav" for i in range(4)] and summary["failed"] == []
    for name in names:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert "Ray: 2 workers (1 CPU, 0.5 GPU each) on a cluster of 2 CPUs, 1 GPU" in err
    assert "ETA" in err and "4/4 done" in err

    for out in ("ray", "local"):  # the local batch keeps the same settings record: Ray resumes its work too
        code, again, err = _ray_batch(capsys, audio, tmp_path / out, "--seed", "5", "--emotion", "happiness")
        assert code == 0 and again["written"] == [] and sorted(again["skipped"]) == sorted(summary["written"])
        assert "Ray:" not in err  # nothing to do: no worker was started


def test_a_changed_setting_redoes_only_the_lines_it_affects(cluster, tmp_path, capsys):
    _speech(tmp_path / "a.wav", 1.2, seed=1)
    _speech(tmp_path / "b.wav", 1.2, seed=2)
    lines = [{"audio": "a.wav", "output": "a.npz"}, {"audio": "b.wav", "output": "b.npz"},
             {"audio": "a.wav", "output": "a_sad.npz", "emotion": {"label": "sadness"}}]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    code, first, err = _ray_batch(capsys, manifest, out)
    assert code == 0 and len(first["written"]) == 3, err
    before = {name: (out / name).read_bytes() for name in ("a.npz", "b.npz", "a_sad.npz")}

    lines[2]["emotion"] = {"label": "anger"}  # one line's setting changes
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    _speech(tmp_path / "b.wav", 1.2, seed=9)  # and one line is re-recorded
    code, second, err = _ray_batch(capsys, manifest, out)
    assert code == 0, err
    assert sorted(second["written"]) == ["line 2 (b.wav)", "line 3 (a.wav)"] and second["skipped"] == ["line 1 (a.wav)"]
    assert (out / "a_sad.npz").read_bytes() != before["a_sad.npz"] and (out / "b.npz").read_bytes() != before["b.npz"]
    assert (out / "a.npz").read_bytes() == before["a.npz"]


def test_a_killed_worker_costs_nothing_every_line_is_written_once(cluster, tmp_path, capsys):
    manifest = _sleep_manifest(tmp_path, count=6, steps=4)  # 0.4 s a line
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = _line_workers(busy=True)
            if busy and list(out.glob("take*.npz")):  # mid-job: something written, a line running
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    code, summary, err = _ray_batch(capsys, manifest, out, "--gpus-per-worker", "0")  # two CPU workers
    killer.join()
    assert killed, "no worker was killed"
    assert code == 0, err
    assert sorted(summary["written"]) == [f"line {i} (line.wav)" for i in range(1, 7)] and summary["failed"] == []
    assert len(summary["retried"]) == 1 and f"pid {killed[0]}" in summary["retried"][0]["reason"]
    assert _commits(out) == {f"take{i}.npz": 1 for i in range(6)}  # each line written exactly once
    for index in range(6):
        assert_valid_npz(out / f"take{index}.npz", frames=30)
    assert temp_files(out) == []


def test_a_corrupt_line_and_a_line_that_kills_its_workers_are_reported_and_the_others_finish(cluster, tmp_path,
                                                                                              capsys):
    _speech(tmp_path / "good.wav", 1.0, seed=3)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    lines = [json.dumps({"audio": "good.wav", "output": "first.npz"}),
             json.dumps({"audio": "corrupt.wav"}),
             "not json at all",
             json.dumps({"audio": "good.wav", "output": "crash.npz", "engine": "_test_crash"}),
             json.dumps({"audio": "good.wav", "output": "last.npz", "fps": 24})]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    code, summary, err = _ray_batch(capsys, manifest, out, "--max-retries", "1")
    assert code == 1, err
    assert sorted(summary["written"]) == ["line 1 (good.wav)", "line 5 (good.wav)"]
    failures = {failure["item"]: failure["error"] for failure in summary["failed"]}
    assert sorted(failures) == ["line 2 (corrupt.wav)", "line 3", "line 4 (good.wav)"]
    assert str(tmp_path / "corrupt.wav") in failures["line 2 (corrupt.wav)"]  # the user's path, not the worker's
    assert "not valid JSON" in failures["line 3"]
    assert failures["line 4 (good.wav)"].startswith("2 workers died while generating this line")
    assert [r["item"] for r in summary["retried"]] == ["line 4 (good.wav)"]
    assert_valid_npz(out / "first.npz", frames=30)
    assert_valid_npz(out / "last.npz", frames=24)
    assert not (out / "corrupt.npz").exists() and not (out / "crash.npz").exists() and temp_files(out) == []


def test_ctrl_c_cancels_cleanly_and_the_same_command_finishes_the_rest(cluster, tmp_path, capsys):
    manifest = _sleep_manifest(tmp_path, count=6, steps=3)  # 0.3 s a line
    out = tmp_path / "out"
    batch = subprocess.Popen([sys.executable, "-m", "backend", "batch", str(manifest), "--out", str(out), "--json",
                              "--ray", cluster], cwd=ROOT, env=full_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not list(out.glob("take*.npz")) and time.monotonic() < deadline and batch.poll() is None:
        time.sleep(0.02)
    assert _line_workers(), "the batch's workers are not running"
    batch.send_signal(signal.SIGINT)
    stdout, stderr = batch.communicate(timeout=60)
    assert batch.returncode == 130, stderr
    summary = json.loads(stdout)
    assert summary["interrupted"] and 1 <= len(summary["written"]) < 6 and "Traceback" not in stderr
    done = sorted(p.name for p in out.glob("take*.npz"))
    assert len(done) == len(summary["written"]) and temp_files(out) == []  # nothing partial
    for name in done:
        assert_valid_npz(out / name, frames=30)
    deadline = time.monotonic() + 20
    while _line_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _line_workers() == [], "Ctrl-C left the batch's workers running"

    code, rest, err = _ray_batch(capsys, manifest, out)
    assert code == 0, err
    assert len(rest["skipped"]) == len(done) and len(rest["written"]) == 6 - len(done)
    assert _commits(out) == {f"take{i}.npz": 1 for i in range(6)}


@pytest.mark.parametrize("resources, options, expected", [
    ({"CPU": 32.0, "GPU": 4.0}, {}, (4, 1.0, 1.0)),  # GPUs: one worker per GPU
    ({"CPU": 32.0, "GPU": 4.0}, {"gpus_per_worker": 0.5}, (8, 1.0, 0.5)),  # two per GPU
    ({"CPU": 32.0}, {"cpus_per_worker": 4.0}, (8, 4.0, 0.0)),  # CPUs only
    ({"CPU": 32.0}, {"workers": 3}, (3, 1.0, 0.0)),
    ({"CPU": 32.0}, {}, (10, 1.0, 0.0)),  # never more workers than lines
])
def test_workers_are_planned_from_the_cluster_resources(resources, options, expected):
    from types import SimpleNamespace

    from backend.cluster import ClusterOptions, _plan_workers

    cluster = SimpleNamespace(cluster_resources=lambda: resources)  # all the planner reads from Ray
    assert _plan_workers(cluster, ClusterOptions(**options), lines=10)[:3] == expected


def test_asking_for_gpus_on_a_cluster_without_gpus_is_one_clear_error():
    from types import SimpleNamespace

    from backend.cluster import ClusterError, ClusterOptions, _plan_workers

    with pytest.raises(ClusterError, match="--gpus-per-worker 1 asks for GPUs, but the cluster has 0"):
        _plan_workers(SimpleNamespace(cluster_resources=lambda: {"CPU": 8.0}), ClusterOptions(gpus_per_worker=1),
                      lines=4)


def test_without_ray_installed_the_option_says_how_to_get_it(tmp_path):
    _speech(tmp_path / "line.wav", 1.0, seed=0)
    script = ("import sys; sys.modules['ray'] = None\n"  # what an interpreter without Ray sees on `import ray`
              "from backend.cli import main\n"
              f"sys.exit(main(['batch', {str(tmp_path)!r}, '--out', {str(tmp_path / 'out')!r}, '--ray']))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=full_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --ray needs Ray"), done.stderr
    assert "pip install 'expgest-blender[cluster]'" in lines[0]
    assert not (tmp_path / "out").exists()  # it said so before doing anything
