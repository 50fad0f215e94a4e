"""One error hierarchy: every class has a stable code, and an error raised in a real backend process arrives in
the client as the same class with its code and data (rebuilt from the code, never parsed from text)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend import errors
from backend.client import BackendClient, BackendError
from backend.protocol import Response, encode_message, error_response_for, parse_server_message
from tests.servers.harness import ROOT, backend_env, generate_params, make_tone

# Codes a test below sends through a real backend process, and codes the client raises itself.
THROUGH_THE_SERVER = {errors.PARSE_ERROR, errors.INVALID_REQUEST, errors.METHOD_NOT_FOUND, errors.INVALID_PARAMS,
                      errors.INTERNAL_ERROR, errors.AUDIO_ERROR, errors.WEIGHTS_ERROR, errors.CANCELLED,
                      errors.OUTPUT_ERROR, errors.ENGINE_ERROR, errors.DEVICE_ERROR}
RAISED_BY_THE_CLIENT = {errors.SERVER_EXITED, errors.TIMEOUT, errors.SERVER_NOT_STARTED, errors.VERSION_MISMATCH}
NOT_FROM_THE_SERVER = {errors.FILE_FORMAT_ERROR}  # raised in-process (BVH import), covered by the wire test


def test_every_class_has_one_stable_code_and_a_title():
    registered = errors.registered_errors()
    assert set(registered) == THROUGH_THE_SERVER | RAISED_BY_THE_CLIENT | NOT_FROM_THE_SERVER
    assert len({cls for cls in registered.values()}) == len(registered)
    for code, cls in registered.items():
        assert cls.code == code and cls.title and issubclass(cls, errors.ExpGestError)
        assert errors.ERROR_NAMES[code] == cls.title
    with pytest.raises(TypeError, match="already used"):
        type("Duplicate", (errors.ExpGestError,), {"code": errors.AUDIO_ERROR})


@pytest.mark.parametrize("code", sorted(errors.registered_errors()))
def test_every_class_crosses_the_wire_as_itself(code):
    cls = errors.registered_errors()[code]
    original = errors.ExpGestError.from_wire(code, "What went wrong; what to do.", {"field": "fps"})
    line = encode_message(error_response_for(7, original))
    message = parse_server_message(line)
    assert isinstance(message, Response) and message.error is not None
    assert json.loads(line)["error"] == {"code": code, "message": "What went wrong; what to do.",
                                         "data": {"field": "fps"}}
    rebuilt = message.error.to_exception()
    assert type(rebuilt) is cls and rebuilt.code == code and rebuilt.message == original.message


def test_details_travel_as_a_list_and_unknown_codes_keep_theirs():
    error = errors.WeightsError("Files are missing; put them where listed.", details=["a/model.pt", "b/mean.npy"])
    wire = error.to_wire()
    assert wire["data"]["details"] == ["a/model.pt", "b/mean.npy"] and "a/model.pt" not in wire["message"]
    assert errors.ExpGestError.from_wire(wire["code"], wire["message"], wire["data"]).details == error.details
    newer = errors.ExpGestError.from_wire(-32050, "From a newer server.")
    assert type(newer) is errors.ExpGestError and newer.code == -32050


def test_request_error_keeps_its_field_through_the_wire():
    rebuilt = errors.ExpGestError.from_wire(**errors.RequestError("audio.end_s", "must be greater.").to_wire())
    assert isinstance(rebuilt, errors.RequestError) and rebuilt.field == "audio.end_s"
    assert rebuilt.reason == "must be greater."


# ---- through a real backend process -----------------------------------------------------------------

@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    return make_tone(tmp_path_factory.mktemp("errors") / "tone.wav")


def _failure(pending) -> BackendError:
    with pytest.raises(BackendError) as info:
        pending.result(timeout=120)
    return info.value


def _cases(tone: Path, tmp: Path) -> dict[int, tuple[str, dict]]:
    a_file = tmp / "a_file"
    a_file.write_text("not a folder")
    return {
        errors.INVALID_PARAMS: ("generate", {"output": str(tmp / "x.npz")}),
        errors.METHOD_NOT_FOUND: ("no_such_method", {}),
        errors.AUDIO_ERROR: ("generate", generate_params(tmp / "missing.wav", tmp / "a.npz")),
        errors.OUTPUT_ERROR: ("generate", generate_params(tone, a_file / "o.npz")),
        errors.INTERNAL_ERROR: ("generate", generate_params(tone, tmp / "i.npz", engine="_test_raise")),
        errors.WEIGHTS_ERROR: ("character", {"output": str(tmp / "c.npz"), "smplx_dir": str(tmp / "no_smplx")}),
        errors.DEVICE_ERROR: ("generate", generate_params(tone, tmp / "d.npz", engine="expgest", models=str(tmp),
                                                          device="mps")),
    }


@pytest.mark.parametrize("code", [errors.INVALID_PARAMS, errors.METHOD_NOT_FOUND, errors.AUDIO_ERROR,
                                  errors.OUTPUT_ERROR, errors.INTERNAL_ERROR, errors.WEIGHTS_ERROR,
                                  errors.DEVICE_ERROR])
def test_a_server_error_arrives_as_its_class(client, tone, tmp_path, code):
    if code == errors.DEVICE_ERROR and sys.platform == "darwin":
        pytest.skip("MPS may exist on macOS")
    method, params = _cases(tone, tmp_path)[code]
    error = _failure(client.send(method, params))
    assert type(error) is errors.registered_errors()[code] and error.code == code, error
    assert error.message and "Traceback" not in error.message
    if code == errors.INVALID_PARAMS:
        assert error.field == "audio" and error.data["field"] == "audio"
    if code == errors.INTERNAL_ERROR:
        assert "traceback" in error.data


def test_a_cancelled_generation_arrives_as_cancelled_error(client, tone, tmp_path):
    pending = client.generate(generate_params(tone, tmp_path / "c.npz", engine="_test_sleep", steps=300))
    while pending.progress is None:
        client.poll()
        time.sleep(0.02)
    pending.cancel()
    error = _failure(pending)
    assert type(error) is errors.CancelledError and error.cancelled


def test_an_engine_error_arrives_as_engine_error(tone, tmp_path):
    """A backend interpreter without PyTorch: the expgest engine fails with an EngineError that says so."""
    hidden = tmp_path / "no_torch"
    (hidden / "torch").mkdir(parents=True)
    (hidden / "torch" / "__init__.py").write_text("raise ImportError('PyTorch is hidden for this test')\n")
    backend = BackendClient(sys.executable, env=backend_env(PYTHONPATH=f"{hidden}:{ROOT}"), cwd=str(ROOT))
    backend.start(timeout=120)
    try:
        error = _failure(backend.generate(generate_params(tone, tmp_path / "e.npz", engine="expgest",
                                                         models=str(tmp_path))))
    finally:
        backend.shutdown()
    assert type(error) is errors.EngineError and error.code == errors.ENGINE_ERROR
    assert "PyTorch" in error.message


@pytest.mark.parametrize("line, code", [(b"this is not json\n", errors.PARSE_ERROR),
                                        (b'{"id": 5, "method": "initialize", "bogus": 1}\n', errors.INVALID_REQUEST)])
def test_envelope_errors_from_a_real_server_decode_to_their_class(line, code):
    """Lines the client never sends: written raw to a real server, its answer decoded as the client does."""
    process = subprocess.Popen([sys.executable, "-m", "backend", "serve"], cwd=ROOT,
                               env={**os.environ, **backend_env()}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    try:
        answer, _ = process.communicate(line, timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    message = parse_server_message(answer.splitlines()[0])
    assert isinstance(message, Response) and message.error is not None
    rebuilt = message.error.to_exception()
    assert type(rebuilt) is errors.registered_errors()[code] and rebuilt.code == code


def test_connection_failures_are_classes_of_the_hierarchy(tone, tmp_path, client):
    with pytest.raises(errors.ServerNotStartedError) as not_started:
        BackendClient("/nonexistent/python3").start()
    assert not_started.value.code == errors.SERVER_NOT_STARTED
    pending = client.generate(generate_params(tone, tmp_path / "t.npz", engine="_test_sleep", steps=100))
    with pytest.raises(errors.BackendTimeoutError) as timed_out:
        pending.result(timeout=0.05)
    assert timed_out.value.code == errors.TIMEOUT and isinstance(timed_out.value, TimeoutError)
    pending.cancel()
    _failure(pending)
    crashing = BackendClient(sys.executable, env=backend_env(), cwd=str(ROOT))
    crashing.start(timeout=120)
    try:
        exited = _failure(crashing.generate(generate_params(tone, tmp_path / "x.npz", engine="_test_crash")))
    finally:
        crashing.shutdown()
    assert type(exited) is errors.ServerExitedError and exited.code == errors.SERVER_EXITED
