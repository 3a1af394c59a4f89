"""Every frame an executor sends is checked against protocol v1 where it enters: types, bounds, encodings."""

from __future__ import annotations

import json

import pytest

from executors import protocol
from executors.protocol import ProtocolViolation, parse_executor_frame

HELLO = {"type": "hello", "protocol": 1, "executor_id": "tab-1", "label": "", "software": "t/1", "max_concurrency": 2}
START = {"type": "response_start", "id": "a1", "status": 200, "headers": {"content-type": "application/json"}}
BODY = {"type": "response_body", "id": "a1", "seq": 0, "data": "e30="}
END = {"type": "response_end", "id": "a1", "chunks": 1}
ERROR = {"type": "error", "id": "a1", "code": "upstream_unreachable", "message": "connection refused"}

VALID = [
    HELLO,
    {"type": "pong", "nonce": "7"},
    {"type": "ack", "id": "a1"},
    START,
    {**START, "data": "e30=", "end": True},
    {**START, "data": "", "end": True},
    BODY,
    END,
    ERROR,
]


def parse(frame: dict) -> object:
    return parse_executor_frame(json.dumps(frame))


@pytest.mark.parametrize("frame", VALID, ids=lambda frame: frame["type"])
def test_a_valid_frame_comes_back_as_sent_with_its_data_decoded(frame: dict) -> None:
    expected = {**frame, "data": protocol.decode_body(frame["data"])} if "data" in frame else frame

    assert parse(frame) == expected


def test_unknown_fields_are_left_out_and_header_names_lower_cased() -> None:
    frame = {**START, "headers": {"Content-Type": "text/plain"}, "extra": {"deep": [1, 2, 3]}}

    assert parse(frame) == {**START, "headers": {"content-type": "text/plain"}}


@pytest.mark.parametrize(
    "headers",
    [
        {"x-tab": "a\tb", "x-plain": "1"},  # a tab is allowed, though not printable
        {"x-accented": "café", "x-plain": "1"},  # non-ASCII text is allowed
        {"x-long": "v" * 8192, "X-Upper": "1", "x-" + "n" * 254: "2"},  # at the length limits
        {},
    ],
    ids=["a tab", "non-ASCII", "at the limits", "none"],
)
def test_headers_any_client_would_accept_pass_through_lower_cased(headers: dict) -> None:
    assert parse({**START, "headers": headers})["headers"] == {name.lower(): value for name, value in headers.items()}


def test_a_well_formed_frame_of_an_unknown_type_is_ignored() -> None:
    assert parse({"type": "progress", "id": "a1", "percent": 50}) is None
    assert parse({"type": "future.thing"}) is None


HOSTILE = {
    "an unknown type with a list id": '{"type":"zzz","id":["x"]}',
    "an ack with an object id": '{"type":"ack","id":{"a":1}}',
    "a 200k-deep array": "[" * 200_000 + "]" * 200_000,
    "a 200k-deep object": '{"a":' * 200_000,
    "not JSON": "{",
    "a JSON array": "[1, 2]",
    "NaN": '{"type":"zzz","x":NaN}',
    "a 5000-digit number": '{"type":"response_end","id":"a1","chunks":' + "9" * 5000 + "}",
    "no type": '{"id":"a1"}',
    "a numeric type": '{"type":7}',
    "a huge type": json.dumps({"type": "z" * 1000}),
    "an empty id": json.dumps({"type": "ack", "id": ""}),
    "a huge id": json.dumps({"type": "ack", "id": "a" * 1000}),
    "an id with a newline": json.dumps({"type": "ack", "id": "a\nb"}),
    "an ack without id": json.dumps({"type": "ack"}),
    "status as a string": json.dumps({**START, "status": "abc"}),
    "status 999": json.dumps({**START, "status": 999}),
    "status 0": json.dumps({**START, "status": 0}),
    "status true": json.dumps({**START, "status": True}),
    "status 200.0": json.dumps({**START, "status": 200.0}),
    "no status": json.dumps({k: v for k, v in START.items() if k != "status"}),
    "headers as a list": json.dumps({**START, "headers": [["content-type", "x"]]}),
    "no headers": json.dumps({k: v for k, v in START.items() if k != "headers"}),
    "CRLF in a header value": json.dumps({**START, "headers": {"x-a": "1\r\nset-cookie: a=b"}}),
    "NUL in a header value": json.dumps({**START, "headers": {"x-a": "1\x00"}}),
    "a space in a header name": json.dumps({**START, "headers": {"x a": "1"}}),
    "a colon in a header name": json.dumps({**START, "headers": {"x:a": "1"}}),
    "a numeric header value": json.dumps({**START, "headers": {"x-a": 1}}),
    "a huge header value": json.dumps({**START, "headers": {"x-a": "v" * 10_000}}),
    "too many headers": json.dumps({**START, "headers": {f"x-{n}": "v" for n in range(101)}}),
    "a lone surrogate in a header": '{"type":"response_start","id":"a1","status":200,"headers":{"x":"\\ud800"}}',
    # Each beside plain headers, which are checked all at once: the odd one must still be found.
    "an empty header name": json.dumps({**START, "headers": {"x-a": "1", "": "2"}}),
    "a DEL in a header value": json.dumps({**START, "headers": {"x-a": "1", "x-b": "2\x7f"}}),
    "a lone LF in a header value": json.dumps({**START, "headers": {"x-a": "1", "x-b": "2\n3"}}),
    "a header name too long": json.dumps({**START, "headers": {"x-a": "1", "x" * 257: "2"}}),
    "a header value too long": json.dumps({**START, "headers": {"x-a": "1", "x-b": "v" * 8193}}),
    "a null header value": json.dumps({**START, "headers": {"x-a": "1", "x-b": None}}),
    "end as a string": json.dumps({**START, "end": "yes"}),
    "bad base64 in data": json.dumps({**BODY, "data": "not base64!"}),
    "unpadded base64": json.dumps({**BODY, "data": "e30"}),
    "base64 with a newline": json.dumps({**BODY, "data": "e30=\n"}),
    "non-ASCII data": json.dumps({**BODY, "data": "é"}),
    "data as a number": json.dumps({**BODY, "data": 5}),
    "data over a chunk": json.dumps({**BODY, "data": protocol.encode_body(bytes(protocol.BODY_CHUNK_BYTES + 1))}),
    "bad base64 in a whole answer": json.dumps({**START, "data": "%%%", "end": True}),
    "missing data": json.dumps({k: v for k, v in BODY.items() if k != "data"}),
    "a negative seq": json.dumps({**BODY, "seq": -1}),
    "seq as a string": json.dumps({**BODY, "seq": "0"}),
    "seq true": json.dumps({**BODY, "seq": True}),
    "chunks as a float": json.dumps({**END, "chunks": 1.5}),
    "an unknown error code": json.dumps({**ERROR, "code": "zzz"}),
    "an error code as a list": json.dumps({**ERROR, "code": ["internal"]}),
    "a huge error message": json.dumps({**ERROR, "message": "m" * 5000}),
    "a NUL in an error message": json.dumps({**ERROR, "message": "a\x00b"}),
    "a pong with a numeric nonce": json.dumps({"type": "pong", "nonce": 7}),
    "hello for protocol 2": json.dumps({**HELLO, "protocol": 2}),
    "hello with protocol true": json.dumps({**HELLO, "protocol": True}),
    "hello with a list executor_id": json.dumps({**HELLO, "executor_id": ["x"]}),
    "hello with zero slots": json.dumps({**HELLO, "max_concurrency": 0}),
    "hello with slots as a string": json.dumps({**HELLO, "max_concurrency": "8"}),
    "hello with a CR in its label": json.dumps({**HELLO, "label": "a\rb"}),
    "hello with a huge software": json.dumps({**HELLO, "software": "s" * 1000}),
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_frame_outside_the_protocol_is_a_violation(text: str) -> None:
    with pytest.raises(ProtocolViolation):
        parse_executor_frame(text)


def test_a_binary_frame_is_a_violation() -> None:
    with pytest.raises(ProtocolViolation):
        parse_executor_frame(json.dumps(START).encode())


def test_a_violation_is_a_value_error_so_older_callers_still_catch_it() -> None:
    assert issubclass(ProtocolViolation, ValueError)


def test_an_error_message_made_by_error_message_is_always_accepted() -> None:
    hostile = "upstream said: \x00" + "\ud800" + "é" * 5000

    message = protocol.error_message(hostile)
    frame = protocol.parse_executor_frame(
        protocol.dumps({"type": "error", "id": "a1", "code": "internal", "message": message})
    )

    assert frame is not None and frame["message"].startswith("upstream said: \ufffd\ufffdé")
    assert len(message) == protocol.MAX_MESSAGE_LENGTH


@pytest.mark.parametrize("length", [0, 1, 10, 11, 20, 21, 35])
def test_a_body_is_cut_into_pieces_of_the_frame_size_that_join_to_it(length: int) -> None:
    body = bytes(range(length))
    pieces = protocol.split_body(body, size=10)
    assert b"".join(pieces) == body
    assert [len(piece) for piece in pieces] == [10] * (length // 10) + ([length % 10] if length % 10 else [])
