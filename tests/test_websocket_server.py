"""Daphne's WebSocket messages handed to an application that asks for them (asgi_extensions.RECEIVE_INTO)."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async

from executors.consumer import ExecutorConsumer
from gemproxy_site.asgi_extensions import RECEIVE_INTO
from gemproxy_site.websocket_server import Delivery
from tests.executor_sockets import hello, new_token

pytestmark = pytest.mark.django_db(transaction=True)


async def test_messages_wait_in_the_queue_until_the_application_takes_them_by_hand_then_come_straight() -> None:
    delivery = Delivery()
    delivery.queue = asyncio.Queue()
    delivery.put_nowait({"n": 1})
    delivery.put_nowait({"n": 2})
    handed: list[dict] = []

    delivery.deliver_to(handed.append)
    delivery.put_nowait({"n": 3})

    assert handed == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert delivery.queue.empty()


async def test_without_a_taker_messages_are_received_as_daphne_gives_them() -> None:
    delivery = Delivery()
    delivery.queue = asyncio.Queue()
    delivery.put_nowait({"n": 1})

    assert await asyncio.wait_for(delivery.queue.get(), 1) == {"n": 1}


async def until(condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within the time")


async def test_the_executor_consumer_takes_its_sockets_frames_by_hand_and_never_awaits_receive() -> None:
    token = await database_sync_to_async(new_token)()
    takers: list = []
    sent: list[dict] = []
    awaited = asyncio.Event()

    async def receive() -> dict:
        awaited.set()
        await asyncio.Event().wait()  # never answers: the consumer must not be waiting here
        raise AssertionError

    async def send(message: dict) -> None:
        sent.append(message)

    def welcomed() -> bool:
        return any(json.loads(message.get("text") or "{}").get("type") == "welcome" for message in sent)

    scope = {
        "type": "websocket",
        "path": "/ws/executor",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "subprotocols": [],
        "extensions": {RECEIVE_INTO: takers.append},
    }
    consumer = asyncio.ensure_future(ExecutorConsumer.as_asgi()(scope, receive, send))
    try:
        await until(lambda: takers)
        deliver = takers[0]
        deliver({"type": "websocket.connect"})
        await until(lambda: sent)
        deliver({"type": "websocket.receive", "text": json.dumps(hello())})
        await until(welcomed)

        assert sent[0]["type"] == "websocket.accept"
        assert not awaited.is_set()
    finally:
        if takers:
            takers[0]({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(consumer, 5)
