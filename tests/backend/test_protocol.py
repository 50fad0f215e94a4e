"""Protocol messages and framing (``backend.protocol``, ``backend.transport``), parametrised and fuzzed."""

from __future__ import annotations

import io
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.errors import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR
from backend.protocol import (
    MAX_MESSAGE_BYTES,
    METHODS,
    PROTOCOL_VERSION,
    ErrorObject,
    Notification,
    ProtocolError,
    Request,
    Response,
    encode_message,
    is_compatible,
    parse_request,
    parse_server_message,
    progress_notification,
)
from backend.transport import LineBuffer, LineReader, MessageWriter, Oversized

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
request_ids = st.integers(-2**53, 2**53) | st.text(min_size=1, max_size=200)


@given(request_id=request_ids, target=request_ids)
def test_request_round_trip(request_id, target):
    request = Request(id=request_id, method="cancel", params={"id": target})
    line = encode_message(request)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert parse_request(line) == request


@given(text=st.text(max_size=200), value=json_values)
def test_encoded_messages_are_single_ascii_lines(text, value):
    line = encode_message(Notification("progress", {"stage": text, "value": value}))
    assert line.isascii() and line.count(b"\n") == 1 and b"\r" not in line
    assert json.loads(line)["params"]["stage"] == text


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_errors(data):
    try:
        request = parse_request(data)
    except ProtocolError as error:
        assert error.code in (PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS)
    else:
        assert request.method in METHODS


@settings(max_examples=400)
@given(payload=json_values)
def test_arbitrary_json_raises_only_protocol_errors(payload):
    try:
        parse_request(json.dumps(payload).encode())
    except ProtocolError as error:
        assert error.code in (INVALID_REQUEST, INVALID_PARAMS, METHOD_NOT_FOUND)


@settings(max_examples=300)
@given(request_id=request_ids | json_values, method=st.sampled_from(METHODS) | st.text(max_size=12),
       params=json_values)
def test_envelopes_with_random_members(request_id, method, params):
    line = json.dumps({"id": request_id, "method": method, "params": params}).encode()
    try:
        request = parse_request(line)
    except ProtocolError as error:
        # Whenever the id itself was valid, the error names it so the client can match the answer.
        if error.code in (METHOD_NOT_FOUND, INVALID_PARAMS):
            assert error.request_id == request_id
    else:
        assert request.id == request_id and request.method == method and isinstance(request.params, dict)


@pytest.mark.parametrize("line, code, field", [
    (b"", PARSE_ERROR, None),
    (b"{", PARSE_ERROR, None),
    (b"\xff\xfe", PARSE_ERROR, None),
    (b'{"id": 1, "method": "initialize", "params": {"x": NaN}}', PARSE_ERROR, None),
    (b"[]", INVALID_REQUEST, None),
    (b'{"method": "initialize"}', INVALID_REQUEST, "id"),
    (b'{"id": true, "method": "initialize"}', INVALID_REQUEST, "id"),
    (b'{"id": "", "method": "initialize"}', INVALID_REQUEST, "id"),
    (b'{"id": 1}', INVALID_REQUEST, "method"),
    (b'{"id": 1, "method": "initialize", "extra": 1}', INVALID_REQUEST, "extra"),
    (b'{"id": 1, "method": "fly"}', METHOD_NOT_FOUND, None),
    (b'{"id": 1, "method": "cancel"}', INVALID_PARAMS, "id"),
    (b'{"id": 1, "method": "cancel", "params": {"id": null}}', INVALID_PARAMS, "id"),
    (b'{"id": 1, "method": "cancel", "params": {"id": 2, "why": "x"}}', INVALID_PARAMS, "why"),
    (b'{"id": 1, "method": "shutdown", "params": {"now": true}}', INVALID_PARAMS, "now"),
    (b'{"id": 1, "method": "initialize", "params": {"protocol_version": "one"}}', INVALID_PARAMS, "protocol_version"),
    (b'{"id": 1, "method": "generate", "params": "a.wav"}', INVALID_PARAMS, "params"),
])
def test_invalid_requests(line, code, field):
    with pytest.raises(ProtocolError) as info:
        parse_request(line)
    assert info.value.code == code
    if field is not None:
        assert info.value.data.get("field") == field
    assert info.value.message.endswith(".")


def test_valid_requests_default_params():
    assert parse_request(b'{"id": 3, "method": "shutdown"}') == Request(3, "shutdown", {})
    assert parse_request(b'{"id": "a", "method": "initialize", "params": null}') == Request("a", "initialize", {})
    line = b'{"jsonrpc": "2.0", "id": 1, "method": "generate", "params": {"any": 1}}'
    assert parse_request(line).params == {"any": 1}


def test_oversized_message_is_refused_both_ways():
    with pytest.raises(ProtocolError) as info:
        parse_request(b"{" + b" " * MAX_MESSAGE_BYTES + b"}")
    assert info.value.code == INVALID_REQUEST
    with pytest.raises(ValueError):
        encode_message(Notification("progress", {"blob": "x" * MAX_MESSAGE_BYTES}))
    with pytest.raises(ValueError):
        encode_message(Response(1, result={"bad": float("nan")}))


def test_server_messages_parse():
    assert parse_server_message(b'{"id": 1, "result": {"a": 1}}') == Response(1, result={"a": 1})
    error = parse_server_message(b'{"id": null, "error": {"code": -32700, "message": "bad"}}')
    assert error == Response(None, error=ErrorObject(-32700, "bad", {}))
    note = parse_server_message(encode_message(progress_notification(4, "denoising window 3/14", 0.5)))
    assert note == Notification("progress", {"id": 4, "stage": "denoising window 3/14", "done": 0.5, "message": ""})
    for bad in (b'{"id": 1}', b'{"id": 1, "result": 3}', b'{"id": 1, "error": {"code": "x"}}', b"[]"):
        with pytest.raises(ProtocolError):
            parse_server_message(bad)


def test_progress_fraction_is_clamped():
    assert progress_notification(1, "x", 1.5).params["done"] == 1.0
    assert progress_notification(1, "x", float("nan")).params["done"] is None
    assert progress_notification(1, "x", None).params["done"] is None


@pytest.mark.parametrize("server, client, ok", [
    ("1.0", "1.0", True), ("1.7", "1.0", True), ("2.0", "1.0", False), ("1", "1.0", False), ("x.y", "1.0", False),
])
def test_version_compatibility(server, client, ok):
    assert is_compatible(server, client) is ok
    assert is_compatible(PROTOCOL_VERSION)


# ---- framing ------------------------------------------------------------------------------------

def _read_all(data: bytes, limit: int) -> list:
    reader = LineReader(io.BufferedReader(io.BytesIO(data), buffer_size=7), max_bytes=limit)
    out = []
    while (line := reader.read_line()) is not None:
        out.append(line.size if isinstance(line, Oversized) else line)
    return out


@given(lines=st.lists(st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and b.strip()),
                      max_size=10))
def test_line_reader_returns_each_line(lines):
    data = b"".join(line + b"\n" for line in lines)
    assert _read_all(data, limit=64) == [line.rstrip(b"\r") for line in lines]


def test_line_reader_skips_oversized_lines_and_stays_in_sync():
    data = b"ok1\n" + b"x" * 100 + b"\n" + b"ok2\n" + b"y" * 17 + b"\n\n   \nok3"
    assert _read_all(data, limit=16) == [b"ok1", 100, b"ok2", 17, b"ok3"]
    assert _read_all(b"z" * 16 + b"\n", limit=16) == [b"z" * 16]
    assert _read_all(b"z" * 17, limit=16) == [17]


def _buffer_all(data: bytes, limit: int, cuts: list[int]) -> list:
    """``LineBuffer`` fed ``data`` in the pieces ``cuts`` makes (reads of a non-blocking pipe), then EOF."""
    buffer = LineBuffer(max_bytes=limit)
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    out = []
    for start, end in itertools.pairwise(bounds):
        out += buffer.feed(data[start:end])
    out += buffer.finish()
    return [line.size if isinstance(line, Oversized) else line for line in out]


@given(data=st.lists(st.sampled_from([b"ok", b"x" * 20, b"\n", b"\r\n", b"  ", b"y"]), max_size=30).map(b"".join),
       cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=8))
def test_line_buffer_frames_pieces_as_the_line_reader_frames_a_stream(data, cuts):
    assert _buffer_all(data, 16, cuts) == _read_all(data, limit=16)


def test_line_buffer_drops_an_oversized_line_as_it_arrives():
    buffer = LineBuffer(max_bytes=16)
    assert buffer.feed(b"ok1\n" + b"x" * 40) == [b"ok1"]
    assert len(buffer._buffer) == 0  # never held whole
    assert [getattr(line, "size", line) for line in buffer.feed(b"x" * 60 + b"\nok2\n")] == [100, b"ok2"]
    assert buffer.finish() == []


def test_message_writer_writes_whole_lines():
    stream = io.BytesIO()
    writer = MessageWriter(stream)
    writer.write(Request(1, "shutdown"))
    writer.write(Notification("progress", {"id": 1}))
    assert stream.getvalue().splitlines() == [b'{"id":1,"method":"shutdown","params":{}}',
                                              b'{"method":"progress","params":{"id":1}}']
