"""Binary frames (protocol feature binary_frames): body pieces travel raw, and are checked like text frames."""

from __future__ import annotations

import json

import pytest
from channels.layers import get_channel_layer

from executors import protocol
from executors.protocol import ProtocolViolation, parse_executor_frame
from tests.executor_sockets import communicator, hello, send_task
from tests.test_executor_protocol_violations import assert_closed_cleanly

START = {"type": "response_start", "id": "t1", "status": 200, "headers": {"content-type": "text/event-stream"}}
BODY = {"type": "response_body", "id": "t1", "seq": 0, "data": b"data: 1\r\n\r\n"}


def binary(header: bytes, data: bytes = b"") -> bytes:
    """A binary message built by hand: header length, header, bytes."""
    return len(header).to_bytes(4, "big") + header + data


def test_a_binary_frame_carries_its_header_as_json_and_its_data_raw() -> None:
    message = protocol.binary_frame(BODY)

    assert message == binary(b'{"type":"response_body","id":"t1","seq":0}', b"data: 1\r\n\r\n")
    assert parse_executor_frame(message) == BODY


def test_a_whole_answer_in_one_binary_frame_comes_back_as_sent() -> None:
    whole = {**START, "data": bytes(range(256)), "end": True}

    assert parse_executor_frame(protocol.binary_frame(whole)) == whole


def test_a_text_frame_of_the_same_frame_parses_to_the_same_bytes() -> None:
    assert parse_executor_frame(protocol.text_frame(BODY)) == parse_executor_frame(protocol.binary_frame(BODY))


def test_a_well_formed_binary_frame_of_an_unknown_type_is_ignored() -> None:
    assert parse_executor_frame(binary(b'{"type":"progress","id":"t1"}', b"x")) is None


MALFORMED = {
    "empty": b"",
    "a truncated header length": b"\x00\x00\x00",
    "a header length past the end": binary(b'{"type":"response_body","id":"t1","seq":0}')[:-5],
    "a header length of 4 GiB": b"\xff\xff\xff\xff{}",
    "a header that is not JSON": binary(b"{'type': 'response_body'}"),
    "a header that is not UTF-8": binary(b'{"type":"response_body","id":"\xff"}'),
    "a header that is a list": binary(b'["response_body"]'),
    "a header without a type": binary(b'{"id":"t1","seq":0}'),
    "a header with a bad type": binary(b'{"type":"Response Body","id":"t1","seq":0}'),
    "a header that holds data too": binary(b'{"type":"response_body","id":"t1","seq":0,"data":"eA=="}', b"x"),
    "an ack, which has no body": binary(b'{"type":"ack","id":"t1"}'),
    "a response_end, which has no body": binary(b'{"type":"response_end","id":"t1","chunks":0}'),
    "a hello, which has no body": binary(json.dumps(hello()).encode()),
    "an unknown type with a list id": binary(b'{"type":"progress","id":["t1"]}'),
    "a body piece without seq": binary(b'{"type":"response_body","id":"t1"}', b"x"),
    "a body piece with seq true": binary(b'{"type":"response_body","id":"t1","seq":true}', b"x"),
    "a body piece with a negative seq": binary(b'{"type":"response_body","id":"t1","seq":-1}', b"x"),
    "a body piece with an id of 200 characters": binary(b'{"type":"response_body","seq":0,"id":"' + b"a" * 200 + b'"}'),
    "a body piece larger than a chunk": protocol.binary_frame({**BODY, "data": b"x" * (protocol.BODY_CHUNK_BYTES + 1)}),
    "a head with status 999": protocol.binary_frame({**START, "status": 999, "data": b"", "end": True}),
    "a head with a CRLF in a header": protocol.binary_frame({**START, "headers": {"x-a": "1\r\n"}, "data": b""}),
    "a head with end 1": protocol.binary_frame({**START, "data": b"", "end": 1}),
}


@pytest.mark.parametrize("message", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_binary_frame_outside_the_protocol_is_a_violation(message: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        parse_executor_frame(message)


# Through the real consumer: an executor that offered binary_frames and was welcomed with it.


async def connect_binary_executor(token: str):
    socket = communicator(token)
    connected, _ = await socket.connect()
    assert connected
    await socket.send_to(text_data=json.dumps({**hello(), "features": ["binary_body", "binary_frames"]}))
    welcome = json.loads(await socket.receive_from())
    assert welcome["features"] == ["binary_frames"]
    return socket


@pytest.mark.django_db(transaction=True)
async def test_an_executor_that_does_not_offer_binary_frames_is_welcomed_as_before(token: str) -> None:
    socket = communicator(token)
    await socket.connect()
    await socket.send_to(text_data=json.dumps({**hello(), "features": ["binary_body"]}))

    assert "features" not in json.loads(await socket.receive_from())
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_request_bodies_go_to_a_binary_executor_as_raw_bytes(token: str) -> None:
    socket = await connect_binary_executor(token)
    body = b'{"contents": []}' + bytes(range(256)) * 1200  # two pieces, not UTF-8

    await send_task("t1", body)

    messages = [await socket.receive_output() for _ in range(2)]
    assert [set(message) for message in messages] == [{"type", "bytes"}] * 2, "binary messages, no text"
    (request, first), (rest, second) = (protocol.split_binary_frame(message["bytes"]) for message in messages)
    assert (request["type"], request["body_chunks"]) == ("request", 2), "piece 0 rides in the request"
    assert rest == {"type": "request_body", "id": "t1", "seq": 1}
    assert first + second == body
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_usual_task_reaches_a_binary_executor_as_one_frame(token: str) -> None:
    socket = await connect_binary_executor(token)
    body = b'{"contents": [{"parts": [{"text": "hi"}]}]}'

    await send_task("t1", body)

    request, data = protocol.split_binary_frame((await socket.receive_output())["bytes"])
    assert (request["type"], request["id"], request["body_chunks"], data) == ("request", "t1", 1, body)
    assert await socket.receive_nothing(0.2), "no request_body follows"
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_binary_and_text_frames_of_one_answer_reach_the_dispatcher_as_bytes(token: str) -> None:
    socket = await connect_binary_executor(token)
    reply = await send_task("t1")
    await socket.receive_from()
    layer = get_channel_layer()

    await socket.send_to(text_data=json.dumps(START))
    await socket.send_to(bytes_data=protocol.binary_frame(BODY))
    await socket.send_to(text_data=protocol.text_frame({**BODY, "seq": 1, "data": b"data: 2\r\n\r\n"}))
    await socket.send_to(text_data=json.dumps({"type": "response_end", "id": "t1", "chunks": 2}))

    frames = [(await layer.receive(reply))["frame"] for _ in range(4)]
    assert [frame.get("data") for frame in frames] == [None, b"data: 1\r\n\r\n", b"data: 2\r\n\r\n", None]
    await socket.disconnect()


# The test communicator cannot send an empty message; the parser's own test above covers it.
SENDABLE = {name: message for name, message in MALFORMED.items() if message}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("message", SENDABLE.values(), ids=SENDABLE.keys())
async def test_a_malformed_binary_frame_closes_with_4002_and_fails_the_task_over(token: str, message: bytes) -> None:
    socket = await connect_binary_executor(token)
    reply = await send_task("t1")
    await socket.receive_from()

    await socket.send_to(bytes_data=message)

    await assert_closed_cleanly(socket, reply, protocol.CLOSE_PROTOCOL_ERROR)


OUT_OF_ORDER = {
    "a body before its head": [protocol.binary_frame(BODY)],
    "a gap in seq": [json.dumps(START), protocol.binary_frame({**BODY, "seq": 1})],
    "a repeated seq": [json.dumps(START), protocol.binary_frame(BODY), protocol.binary_frame(BODY)],
    "a second head": [json.dumps(START), protocol.binary_frame({**START, "data": b"", "end": True})],
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("messages", OUT_OF_ORDER.values(), ids=OUT_OF_ORDER.keys())
async def test_binary_frames_out_of_order_close_with_4002(token: str, messages: list[str | bytes]) -> None:
    socket = await connect_binary_executor(token)
    reply = await send_task("t1")
    await socket.receive_from()

    for message in messages:
        if isinstance(message, bytes):
            await socket.send_to(bytes_data=message)
        else:
            await socket.send_to(text_data=message)

    await assert_closed_cleanly(socket, reply, protocol.CLOSE_PROTOCOL_ERROR)


@pytest.mark.django_db(transaction=True)
async def test_a_valid_binary_frame_from_an_executor_welcomed_without_them_closes_with_4002(token: str) -> None:
    socket = communicator(token)
    await socket.connect()
    await socket.send_to(text_data=json.dumps(hello()))  # a browser's hello: no binary_frames
    await socket.receive_from()
    reply = await send_task("t1")
    await socket.receive_from()

    await socket.send_to(bytes_data=protocol.binary_frame({**START, "data": b"{}", "end": True}))

    await assert_closed_cleanly(socket, reply, protocol.CLOSE_PROTOCOL_ERROR)
