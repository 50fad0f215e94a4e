"""``backend.client.BackendClient`` against real subprocesses: the backend and misbehaving fixture servers."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backend.client import BackendClient, BackendError, BackendTimeoutError
from backend.errors import CANCELLED, INVALID_PARAMS, PARSE_ERROR
from backend.protocol import SERVER_EXITED, SERVER_NOT_STARTED
from tests.servers.harness import ROOT, SERVERS, assert_valid_npz, backend_env, generate_params, make_tone

pytestmark = pytest.mark.e2e


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is not running.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module", params=[True, False], ids=["threads", "thread-free"])
def threads(request) -> bool:
    """Every test runs with reader threads (scripts, batch) and thread-free (the Blender add-on); conftest's
    ``client`` fixture takes this mode."""
    return request.param


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    return make_tone(tmp_path_factory.mktemp("audio") / "tone.wav", seconds=1.0)


def test_start_returns_initialize_result(client):
    assert client.alive
    assert client.server_info["protocol_version"] == "1.0"
    assert client.server_info["pid"] == client.pid


def test_generate_progress_callbacks_run_on_the_polling_thread(client, tone, tmp_path):
    calls = []
    done = []
    caller = threading.get_ident()

    def on_progress(stage, fraction, message):
        calls.append((threading.get_ident(), stage, fraction))

    pending = client.generate(generate_params(tone, tmp_path / "out.npz", engine="_test_sleep", steps=4),
                              on_progress=on_progress, on_done=lambda p: done.append(threading.get_ident()))
    assert not pending.done()
    deadline = time.monotonic() + 60
    while not pending.done() and time.monotonic() < deadline:  # the add-on's timer loop
        client.poll()
        time.sleep(0.02)
    client.poll()
    result = pending.result(timeout=1)
    assert result["frames"] == 30 and Path(result["output"]) == (tmp_path / "out.npz").resolve()
    assert_valid_npz(tmp_path / "out.npz", frames=30)
    assert {thread for thread, _, _ in calls} == {caller} and done == [caller]
    stages = [stage for _, stage, _ in calls]
    assert "denoising window 4/4" in stages
    fractions = [f for _, _, f in calls if f is not None]
    assert fractions == sorted(fractions)


def test_callbacks_never_run_without_poll(client, tone, tmp_path, threads):
    calls = []
    pending = client.generate(generate_params(tone, tmp_path / "x.npz", engine="_test_sleep", steps=2),
                              on_progress=lambda *a: calls.append(a))
    if threads:
        while not pending.done():
            time.sleep(0.02)
    else:
        time.sleep(1.0)
        assert not pending.done()  # thread-free: nothing is even read before poll()
    assert calls == []  # nothing was dispatched: no poll() yet
    pending.result()
    assert calls


def test_request_error_carries_code_and_field(client):
    with pytest.raises(BackendError) as info:
        client.request("generate", {"output": "/tmp/x.npz"}, timeout=30)
    assert info.value.code == INVALID_PARAMS and info.value.data["field"] == "audio"


def test_cancel_a_running_generation(client, tone, tmp_path):
    pending = client.generate(generate_params(tone, tmp_path / "c.npz", engine="_test_sleep", steps=300))
    while pending.progress is None or not pending.progress[0].startswith("denoising"):
        client.poll()  # reads the pipe in thread-free mode
        time.sleep(0.02)
    started = time.monotonic()
    pending.cancel()
    with pytest.raises(BackendError) as info:
        pending.result(timeout=5)
    assert time.monotonic() - started < 1.0
    assert info.value.cancelled and info.value.code == CANCELLED
    assert not (tmp_path / "c.npz").exists()


def test_cancel_a_queued_generation(client, tone, tmp_path):
    first = client.generate(generate_params(tone, tmp_path / "1.npz", engine="_test_sleep", steps=5))
    second = client.generate(generate_params(tone, tmp_path / "2.npz", engine="_test_sleep", steps=5))
    second.cancel()
    with pytest.raises(BackendError) as info:
        second.result(timeout=10)
    assert info.value.code == CANCELLED
    assert first.result(timeout=30)["frames"] == 30
    assert not (tmp_path / "2.npz").exists()


def test_result_timeout_leaves_the_request_running(client, tone, tmp_path):
    pending = client.generate(generate_params(tone, tmp_path / "t.npz", engine="_test_sleep", steps=5))
    with pytest.raises(BackendTimeoutError):
        pending.result(timeout=0.05)
    assert pending.result(timeout=30)["frames"] == 30


def test_character_answers_without_killing_the_server(client, tmp_path):
    try:
        result = client.character({"gender": "neutral", "output": str(tmp_path / "char.npz")}, timeout=60)
    except BackendError as error:  # backend.character not merged yet: a clear error, not a crash
        assert "not available" in error.message
    else:
        assert isinstance(result, dict)
    for params, field in (({"gender": "robot", "output": "/tmp/c.npz"}, "gender"), ({"gender": "neutral"}, "output"),
                          ({"output": "/tmp/c.npz", "betas": "tall"}, "betas")):
        with pytest.raises(BackendError) as info:
            client.character(params, timeout=30)
        assert info.value.code == INVALID_PARAMS and info.value.data["field"] == field
    assert client.alive


def test_unexpected_exit_becomes_an_error_with_the_stderr_tail(tone, tmp_path, threads):
    exits = []
    backend = BackendClient(sys.executable, env=backend_env(), cwd=str(ROOT), on_exit=exits.append,
                            threads=threads)
    backend.start(timeout=120)
    queued = backend.generate(generate_params(tone, tmp_path / "q.npz", engine="_test_sleep", steps=1))
    crashing = backend.generate(generate_params(tone, tmp_path / "x.npz", engine="_test_crash"))
    assert queued.result(timeout=60)["frames"] == 30
    with pytest.raises(BackendError) as info:
        crashing.result(timeout=60)
    error = info.value
    assert error.code == SERVER_EXITED and error.data["status"] == 3
    assert "killing the backend on purpose" in error.stderr and "exit status 3" in str(error)
    backend.poll()
    assert exits and exits[0].code == SERVER_EXITED
    assert not backend.alive
    with pytest.raises(BackendError):
        backend.generate(generate_params(tone, tmp_path / "y.npz"))
    backend.shutdown()


def test_invalid_json_server_fails_the_handshake(threads):
    backend = BackendClient(sys.executable, args=[str(SERVERS / "invalid_json.py")], threads=threads)
    with pytest.raises(BackendError) as info:
        backend.start(timeout=20)
    assert info.value.code == PARSE_ERROR and "not json" in info.value.stderr
    assert not _pid_alive(backend.pid)


def test_crash_on_start_reports_its_stderr(threads):
    backend = BackendClient(sys.executable, args=[str(SERVERS / "crash_on_start.py")], threads=threads)
    with pytest.raises(BackendError) as info:
        backend.start(timeout=20)
    assert info.value.code == SERVER_EXITED
    assert "No module named 'torch_for_the_test'" in info.value.stderr


def test_missing_interpreter_is_a_clear_error(threads):
    backend = BackendClient("/nonexistent/python3", threads=threads)
    with pytest.raises(BackendError) as info:
        backend.start()
    assert info.value.code == SERVER_NOT_STARTED and "/nonexistent/python3" in info.value.message


def test_slow_start_times_out_and_leaves_no_process(threads):
    backend = BackendClient(sys.executable, args=[str(SERVERS / "slow_start.py")], cwd=str(ROOT),
                            env=backend_env(EXPGEST_TEST_START_DELAY="30"), threads=threads)
    started = time.monotonic()
    with pytest.raises(BackendTimeoutError) as info:
        backend.start(timeout=1.0)
    assert time.monotonic() - started < 10
    assert "warming up" in info.value.stderr
    assert not _pid_alive(backend.pid)


def test_slow_start_within_the_timeout_succeeds(threads):
    backend = BackendClient(sys.executable, args=[str(SERVERS / "slow_start.py")], cwd=str(ROOT),
                            env=backend_env(EXPGEST_TEST_START_DELAY="1"), threads=threads)
    info = backend.start(timeout=120)
    assert info["protocol_version"] == "1.0"
    assert backend.shutdown() == 0


def test_shutdown_escalates_to_kill_for_a_server_that_ignores_sigterm(threads):
    backend = BackendClient(sys.executable, args=[str(SERVERS / "ignores_sigterm.py")], threads=threads)
    backend.start(timeout=20)
    pid = backend.pid
    started = time.monotonic()
    status = backend.shutdown(timeout=0.5)
    assert status == -9
    assert time.monotonic() - started < 8
    assert not _pid_alive(pid)
    assert "ignoring shutdown" in backend.stderr_tail()


def test_graceful_shutdown_exits_zero_and_is_idempotent(tone, tmp_path, threads):
    backend = BackendClient(sys.executable, env=backend_env(), cwd=str(ROOT), threads=threads)
    backend.start(timeout=120)
    pending = backend.generate(generate_params(tone, tmp_path / "s.npz", engine="_test_sleep", steps=100))
    assert backend.shutdown() == 0
    assert backend.shutdown() == 0
    with pytest.raises(BackendError) as info:
        pending.result(timeout=5)
    assert info.value.code in (CANCELLED, SERVER_EXITED)
    assert not backend.alive and not (tmp_path / "s.npz").exists()


def test_dropped_client_leaves_no_orphan(threads):
    backend = BackendClient(sys.executable, args=[str(SERVERS / "ignores_sigterm.py")], threads=threads)
    backend.start(timeout=20)
    pid = backend.pid
    del backend
    gc.collect()
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(pid)


def test_killed_client_process_takes_its_server_down(tmp_path, threads):
    """The parent dies with SIGKILL (no clean-up at all): the server sees stdin close and exits."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from backend.client import BackendClient\n"
        f"from tests.servers.harness import backend_env\n"
        f"client = BackendClient(sys.executable, env=backend_env(), cwd={str(ROOT)!r}, threads={threads})\n"
        "client.start(timeout=120)\n"
        "print(client.pid, flush=True)\n"
        "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, cwd=ROOT)
    server_pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait(10)
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while _pid_alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(server_pid)


def test_two_clients_started_at_once(tone, tmp_path, threads):
    clients = [BackendClient(sys.executable, env=backend_env(), cwd=str(ROOT), threads=threads) for _ in range(2)]
    errors = []

    def start(backend):
        try:
            backend.start(timeout=120)
        except BackendError as error:
            errors.append(error)

    threads = [threading.Thread(target=start, args=(backend,)) for backend in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert clients[0].pid != clients[1].pid
    pendings = [backend.generate(generate_params(tone, tmp_path / f"{i}.npz", engine="_test_sleep", steps=2))
                for i, backend in enumerate(clients)]
    assert [p.result(timeout=60)["frames"] for p in pendings] == [30, 30]
    assert [backend.shutdown() for backend in clients] == [0, 0]


def test_thread_free_client_starts_no_thread_and_never_blocks_its_caller(tone, tmp_path):
    """The add-on's mode: a slow start, a generation with progress and a shutdown, all driven by poll() from one
    thread; the process never has a second thread and no call blocks (begin_start, poll, handshake_result)."""
    before = threading.enumerate()
    backend = BackendClient(sys.executable, args=[str(SERVERS / "slow_start.py")], cwd=str(ROOT),
                            env=backend_env(EXPGEST_TEST_START_DELAY="1"), threads=False)
    started = time.monotonic()
    handshake = backend.begin_start(timeout=120)
    assert backend.handshake_result(handshake, block=False) is None  # still warming up: not waited for
    longest_call, info = 0.0, None
    while info is None:
        tick = time.monotonic()
        backend.poll()
        info = backend.handshake_result(handshake, block=False)
        longest_call = max(longest_call, time.monotonic() - tick)
        assert time.monotonic() - started < 60
        time.sleep(0.02)
    assert info["protocol_version"] == "1.0" and time.monotonic() - started > 1.0
    progress = []
    pending = backend.generate(generate_params(tone, tmp_path / "free.npz", engine="_test_sleep", steps=5),
                               on_progress=lambda stage, done, message: progress.append(threading.get_ident()))
    while not pending.done():
        tick = time.monotonic()
        backend.poll()
        longest_call = max(longest_call, time.monotonic() - tick)
        assert threading.enumerate() == before
        time.sleep(0.02)
    assert pending.result()["frames"] == 30 and set(progress) == {threading.get_ident()}
    assert longest_call < 0.5, longest_call
    assert backend.shutdown() == 0 and threading.enumerate() == before


def test_thread_free_start_times_out_without_blocking():
    backend = BackendClient(sys.executable, args=[str(SERVERS / "slow_start.py")], cwd=str(ROOT),
                            env=backend_env(EXPGEST_TEST_START_DELAY="30"), threads=False)
    handshake = backend.begin_start(timeout=1.0)
    started = time.monotonic()
    with pytest.raises(BackendTimeoutError) as info:
        while backend.handshake_result(handshake, block=False) is None:
            backend.poll()
            time.sleep(0.02)
    assert 0.5 < time.monotonic() - started < 10
    assert "within 1 s" in info.value.message and "warming up" in info.value.stderr
    assert not _pid_alive(backend.pid)


def test_importing_the_client_pulls_in_no_torch_or_numpy():
    code = ("import sys; import backend.client, backend.protocol, backend.errors, backend.request, backend.transport; "
            "bad = [m for m in ('torch', 'numpy') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr
