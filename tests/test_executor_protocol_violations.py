"""A frame outside the protocol ends its connection cleanly: 4002, out of the registry, tasks failed over."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from executors import protocol
from executors.consumer import ExecutorConsumer
from executors.registry import get_registry
from tests.executor_sockets import communicator, connect_executor, hello, send_task

pytestmark = pytest.mark.django_db(transaction=True)

START = {"type": "response_start", "id": "t1", "status": 200, "headers": {"content-type": "text/event-stream"}}
BODY = {"type": "response_body", "id": "t1", "seq": 0, "data": "ZGF0YTogMQ0KDQo="}

# The issue's reproductions first, then the class: every field of every frame, and the frames' order.
MALFORMED = {
    "an unknown type with a list id": '{"type":"zzz","id":["x"]}',
    "an ack with an object id": '{"type":"ack","id":{"a":1}}',
    "a 200k-deep array": "[" * 200_000 + "]" * 200_000,
    "not JSON": "{'type': 'ack'}",
    "status abc": json.dumps({**START, "status": "abc"}),
    "status 999": json.dumps({**START, "status": 999}),
    "headers as a list": json.dumps({**START, "headers": ["x"]}),
    "CRLF in a header value": json.dumps({**START, "headers": {"x-a": "1\r\nx-b: 2"}}),
    "bad base64 in a whole answer": json.dumps({**START, "data": "!!", "end": True}),
    "a body piece without data": json.dumps({k: v for k, v in BODY.items() if k != "data"}),
    "an unknown error code": json.dumps({"type": "error", "id": "t1", "code": "zzz", "message": ""}),
}
OUT_OF_ORDER = {
    "a body before its head": [BODY],
    "a second head": [START, START],
    "a gap in seq": [START, {**BODY, "seq": 1}],
    "a repeated seq": [START, BODY, BODY],
    "an end that miscounts": [START, BODY, {"type": "response_end", "id": "t1", "chunks": 5}],
    "bad base64 mid-stream": [START, BODY, {**BODY, "seq": 1, "data": "not base64"}],
    # A head carrying the stream's first piece: the pieces after it still count from 0, and it is not counted.
    "a head with a piece, then seq 1": [{**START, "data": "MQ=="}, {**BODY, "seq": 1}],
    "a head with a piece, its piece counted": [
        {**START, "data": "MQ=="},
        {"type": "response_end", "id": "t1", "chunks": 1},
    ],
    "a head with a piece, then a second head": [{**START, "data": "MQ=="}, START],
    "a head with bad base64 and no end": [{**START, "data": "!!"}],
}


async def assert_closed_cleanly(socket: WebsocketCommunicator, reply: str, code: int) -> None:
    """Closed with ``code``, gone from the registry, and its task failed over to the dispatcher at once."""
    assert await socket.receive_output() == {"type": "websocket.close", "code": code}
    frames = []
    while not frames or frames[-1]["type"] != "error":
        frames.append((await asyncio.wait_for(get_channel_layer().receive(reply), 2))["frame"])
    assert frames[-1] == {"type": "error", "id": "t1", "code": "executor_lost", "message": "executor disconnected"}
    assert await get_registry().snapshot() == []
    await socket.disconnect()


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_frame_closes_with_4002_and_fails_the_task_over(token: str, text: str) -> None:
    socket = await connect_executor(token)
    reply = await send_task("t1")
    await socket.receive_from()

    await socket.send_to(text_data=text)

    await assert_closed_cleanly(socket, reply, protocol.CLOSE_PROTOCOL_ERROR)


@pytest.mark.parametrize("frames", OUT_OF_ORDER.values(), ids=OUT_OF_ORDER.keys())
async def test_a_response_out_of_order_closes_with_4002_and_fails_the_task_over(token: str, frames: list) -> None:
    socket = await connect_executor(token)
    reply = await send_task("t1")
    await socket.receive_from()

    for frame in frames:
        await socket.send_to(text_data=json.dumps(frame))

    await assert_closed_cleanly(socket, reply, protocol.CLOSE_PROTOCOL_ERROR)


async def test_a_binary_frame_closes_with_4002(token: str) -> None:
    socket = await connect_executor(token)
    reply = await send_task("t1")
    await socket.receive_from()

    await socket.send_to(bytes_data=json.dumps(START).encode())

    await assert_closed_cleanly(socket, reply, protocol.CLOSE_PROTOCOL_ERROR)


async def test_a_malformed_hello_is_refused_with_4002(token: str) -> None:
    socket = communicator(token)
    await socket.connect()

    await socket.send_to(text_data=json.dumps({**hello(), "max_concurrency": "lots"}))

    assert await socket.receive_output() == {"type": "websocket.close", "code": protocol.CLOSE_PROTOCOL_ERROR}
    assert await get_registry().snapshot() == []


async def test_frames_after_a_violation_are_not_read(token: str) -> None:
    socket = await connect_executor(token)
    await socket.send_to(text_data='{"type":"ack","id":7}')
    assert (await socket.receive_output())["code"] == protocol.CLOSE_PROTOCOL_ERROR

    await socket.send_to(text_data=json.dumps(hello("tab-again")))

    assert await socket.receive_nothing(0.1)
    assert await get_registry().snapshot() == []


async def test_a_well_formed_frame_of_a_later_version_is_ignored(token: str) -> None:
    socket = await connect_executor(token)
    reply = await send_task("t1")
    await socket.receive_from()

    await socket.send_to(text_data=json.dumps({"type": "progress", "id": "t1", "percent": {"x": [1]}}))
    await socket.send_to(text_data=json.dumps({"type": "ack", "id": "t1"}))

    assert (await get_channel_layer().receive(reply))["frame"] == {"type": "ack", "id": "t1"}
    assert len(await get_registry().snapshot()) == 1
    await socket.disconnect()


async def test_a_violation_is_logged_once_with_the_frame_cut_short(token: str, caplog) -> None:
    socket = await connect_executor(token)

    with caplog.at_level(logging.WARNING, logger="executors.consumer"):
        await socket.send_to(text_data=json.dumps({"type": "ack", "id": ["x" * 100_000]}))
        await socket.receive_output()

    [warning] = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert "broke the protocol" in warning.getMessage()
    assert len(warning.getMessage()) < 500


async def test_an_unexpected_fault_while_handling_a_frame_still_cleans_up(token: str, monkeypatch) -> None:
    socket = await connect_executor(token)
    reply = await send_task("t1")
    await socket.receive_from()

    async def broken(self, frame):
        raise RuntimeError("a bug in the gateway")

    monkeypatch.setattr(ExecutorConsumer, "_forward", broken)
    await socket.send_to(text_data=json.dumps({"type": "ack", "id": "t1"}))

    await assert_closed_cleanly(socket, reply, 1011)


async def test_a_task_that_reaches_a_connection_after_it_left_fails_at_once(token: str) -> None:
    socket = await connect_executor(token)
    lease = await get_registry().acquire("m")
    await socket.send_to(text_data="not json")
    await socket.receive_output()
    layer = get_channel_layer()
    reply = await layer.new_channel()

    await layer.send(
        lease.channel_name,
        {"type": "executor.task", "attempt_id": "t1", "reply_channel": reply, "method": "GET", "path": "/v1/models"}
        | {"query": "", "headers": {}, "body": b""},
    )

    failed = await asyncio.wait_for(layer.receive(reply), 2)  # not after the heartbeat timeout
    assert failed["frame"]["code"] == "executor_lost"
