"""The ZeroMQ envelope: what one side encodes, the other decodes, errors included."""

from __future__ import annotations

import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from labbridge.core.errors import BridgeError, InvalidValue, MalformedRequest, UnknownModule
from labbridge.core.protocol import Request, decode_reply, encode_error, encode_reply, request_id_of


def test_request_round_trip_keeps_every_field() -> None:
    sent = Request.new("put", "module_a", "position", 12.5, timeout=2.0)
    got = Request.decode(sent.encode())
    assert got == sent
    assert got.has_value and len(got.id) == 32
    assert 1.9 < got.deadline - time.time() <= 2.0


def test_who_asked_for_a_write_travels_with_it() -> None:
    sent = Request("put", "module_a", "position", 1.0, time.time() + 1, "id-1", client="192.0.2.7", identity="alice",
                   role="operate", connection="192.0.2.7:50123")
    assert Request.decode(sent.encode()) == sent
    for who in ({"identity": ["alice"]}, {"role": 2}, {"connection": 7}):
        with pytest.raises(MalformedRequest, match="'identity', 'role' and 'connection' must be strings"):
            Request.decode(orjson.dumps({"v": 1, "id": "x", "op": "put", "deadline": 1, **who}))


def test_null_is_a_value_and_absence_is_not() -> None:
    assert Request.decode(Request.new("put", "m", "a", None, timeout=1).encode()).value is None
    assert not Request.decode(Request.new("get", "m", "a", timeout=1).encode()).has_value


@pytest.mark.parametrize("frame", [
    b"not json", b"[1, 2]", b'{"v": 2, "id": "x", "op": "get", "deadline": 1}',
    b'{"v": 1, "id": "x", "op": "delete", "deadline": 1}', b'{"v": 1, "op": "get", "deadline": 1}',
    b'{"v": 1, "id": "x", "op": "get", "deadline": 1, "module": 5}',
])
def test_malformed_requests_are_refused(frame: bytes) -> None:
    with pytest.raises(MalformedRequest):
        Request.decode(frame)


def test_reply_body_passes_through_unchanged() -> None:
    body = {"module": "module_a", "attribute": "trace", "value": [1.0, 2.0]}
    assert orjson.loads(decode_reply(encode_reply("abc", body), "abc")) == body


def test_error_reply_is_re_raised_as_the_same_class() -> None:
    with pytest.raises(InvalidValue, match="too big"):
        decode_reply(encode_error("abc", InvalidValue("too big")), "abc")
    with pytest.raises(UnknownModule):
        decode_reply(encode_error("abc", UnknownModule("x")), "abc")


def test_unknown_error_names_become_a_plain_bridge_error() -> None:
    frames = [orjson.dumps({"id": "abc", "ok": False, "error": "__import__", "detail": "x"}), b""]
    with pytest.raises(BridgeError) as info:
        decode_reply(frames, "abc")
    assert type(info.value) is BridgeError


def test_reply_to_another_request_is_refused() -> None:
    with pytest.raises(BridgeError, match="expected 'mine'"):
        decode_reply(encode_reply("theirs", 1), "mine")


def test_id_of_a_broken_request_is_still_found_when_possible() -> None:
    assert request_id_of(b'{"id": "abc", "op": 5}') == "abc"
    assert request_id_of(b"garbage") == ""


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES, st.integers(min_value=0, max_value=600))
def test_any_json_value_is_forwarded_or_refused_as_malformed(value: object, depth: int) -> None:
    nested = value
    for _ in range(depth):
        nested = [nested]
    try:
        frame = Request.new("put", "m", "a", nested, timeout=1).encode()
    except MalformedRequest:
        assert depth > 200  # only absurd nesting is refused
        return
    assert Request.decode(frame).value == nested
