"""The executor WebSocket: who may connect, and how frames are routed between tasks and sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from executors import protocol
from executors.models import ExecutorAccount
from executors.registry import get_registry
from tests.executor_sockets import communicator, hello, send_task

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = hello()


@pytest.fixture
async def connected(token: str) -> AsyncIterator[WebsocketCommunicator]:
    socket = communicator(token)
    assert (await socket.connect())[0]
    await socket.send_to(text_data=json.dumps(HELLO))
    welcome = json.loads(await socket.receive_from())
    assert welcome["type"] == "welcome"
    yield socket
    await socket.disconnect()


async def test_an_unknown_token_is_refused_before_the_socket_opens() -> None:
    connected, _ = await communicator("gpe_not-a-token").connect()

    assert not connected


async def test_a_disabled_account_is_refused(token: str) -> None:
    await ExecutorAccount.objects.filter(label="ana@example.com").aupdate(enabled=False)

    connected, _ = await communicator(token).connect()

    assert not connected


async def test_a_browser_may_offer_the_token_as_a_subprotocol(token: str) -> None:
    socket = communicator(subprotocols=[protocol.SUBPROTOCOL, protocol.TOKEN_SUBPROTOCOL_PREFIX + token])

    connected, chosen = await socket.connect()

    assert connected
    assert chosen == protocol.SUBPROTOCOL
    await socket.disconnect()


async def test_hello_is_welcomed_with_the_accounts_label_and_heartbeat_terms(token: str) -> None:
    socket = communicator(token)
    await socket.connect()

    await socket.send_to(text_data=json.dumps(HELLO))
    welcome = json.loads(await socket.receive_from())

    assert welcome["account"] == "ana@example.com"
    assert welcome["executor_id"] == "tab-1"
    assert welcome["heartbeat_timeout"] > welcome["heartbeat_interval"] > 0
    [row] = await get_registry().snapshot()
    assert row["max_concurrency"] == 3
    await socket.disconnect()


async def test_a_wrong_protocol_version_is_closed_with_4002(token: str) -> None:
    socket = communicator(token)
    await socket.connect()

    await socket.send_to(text_data=json.dumps({**HELLO, "protocol": 99}))

    assert (await socket.receive_output())["code"] == protocol.CLOSE_PROTOCOL_ERROR


async def test_a_large_body_leaves_in_frames_under_a_mebibyte(connected: WebsocketCommunicator) -> None:
    body = bytes(range(256)) * (3 * 4096)  # 3 MiB
    await send_task("attempt-1", body)

    request = json.loads(await connected.receive_from())
    pieces = [await connected.receive_from() for _ in range(request["body_chunks"])]

    assert request["body_chunks"] == 12
    assert all(len(piece) < 1024 * 1024 for piece in pieces)
    assert b"".join(protocol.decode_body(json.loads(piece)["data"]) for piece in pieces) == body


async def test_frames_go_to_their_tasks_reply_channel_and_stale_ones_are_dropped(
    connected: WebsocketCommunicator,
) -> None:
    reply = await send_task("live")
    await connected.receive_from()

    await connected.send_to(text_data=json.dumps({"type": "ack", "id": "abandoned-long-ago"}))
    await connected.send_to(text_data=json.dumps({"type": "ack", "id": "live"}))

    message = await get_channel_layer().receive(reply)
    assert message["frame"] == {"type": "ack", "id": "live"}


async def test_a_lost_executor_fails_its_tasks_at_once(token: str) -> None:
    socket = communicator(token)
    await socket.connect()
    await socket.send_to(text_data=json.dumps(HELLO))
    await socket.receive_from()
    reply = await send_task("doomed")
    await socket.receive_from()

    await socket.disconnect()

    message = await get_channel_layer().receive(reply)
    assert message["frame"]["code"] == "executor_lost"
    assert await get_registry().snapshot() == []


async def test_an_answer_whole_in_its_first_frame_ends_the_attempt(connected: WebsocketCommunicator) -> None:
    layer = get_channel_layer()
    reply = await send_task("short")
    await connected.receive_from()
    whole = {"type": "response_start", "id": "short", "status": 200, "headers": {}, "data": "e30=", "end": True}

    await connected.send_to(text_data=json.dumps(whole))
    await connected.send_to(text_data=json.dumps({"type": "ack", "id": "short"}))
    await connected.send_to(text_data=json.dumps({"type": "pong", "nonce": "1"}))

    assert (await layer.receive(reply))["frame"] == {**whole, "data": b"{}"}, "its data decoded once, here"
    await asyncio.sleep(0.05)
    assert layer.channels.get(reply) is None or layer.channels[reply].empty(), "the late ack was not forwarded"


async def test_a_head_carrying_the_first_piece_keeps_the_attempt_open_for_the_rest(
    connected: WebsocketCommunicator,
) -> None:
    """How a stream's head now travels: with its first piece, then response_body from seq 0."""
    layer = get_channel_layer()
    reply = await send_task("streamed")
    await connected.receive_from()
    head = {"type": "response_start", "id": "streamed", "status": 200, "headers": {}, "data": "ZGF0YTogMQ=="}

    await connected.send_to(text_data=json.dumps(head))
    await connected.send_to(text_data=json.dumps({"type": "response_body", "id": "streamed", "seq": 0, "data": "Mg=="}))
    await connected.send_to(text_data=json.dumps({"type": "response_end", "id": "streamed", "chunks": 1}))

    frames = [(await layer.receive(reply))["frame"] for _ in range(3)]
    assert frames == [
        {**head, "data": b"data: 1"},
        {"type": "response_body", "id": "streamed", "seq": 0, "data": b"2"},
        {"type": "response_end", "id": "streamed", "chunks": 1},
    ]
