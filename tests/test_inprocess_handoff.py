"""Tasks and frames between a dispatcher and a consumer of the same process skip the channel layer, in order."""

from __future__ import annotations

import asyncio
import json
import uuid
from functools import partial

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from executors import handoff
from executors.dispatcher import Exchange, Task
from executors.layers import LocalChannelLayer
from executors.registry import get_registry
from executors.reply import ReplyChannel
from tests.executor_sockets import communicator, connect_executor, hello

SSE = {"content-type": "text/event-stream"}


class CountingLayer(LocalChannelLayer):
    """The embedded layer, counting what crosses it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []
        self.receiving = 0

    async def send(self, channel: str, message: dict) -> None:
        self.sent.append(channel)
        await super().send(channel, message)

    async def receive(self, channel: str) -> dict:
        self.receiving += 1
        try:
            return await super().receive(channel)
        finally:
            self.receiving -= 1


@pytest.fixture
def layer(monkeypatch: pytest.MonkeyPatch) -> CountingLayer:
    counting = CountingLayer()
    monkeypatch.setattr("executors.reply.get_channel_layer", lambda: counting)
    return counting


async def test_messages_handed_over_arrive_in_order_and_as_sent(layer: CountingLayer) -> None:
    channel = handoff.local_name()
    mailbox = handoff.open_mailbox(channel)
    first = {"type": "executor.frame", "frame": {"type": "response_body", "seq": 0}}

    await handoff.send(layer, channel, first)
    await handoff.send(layer, channel, {"type": "executor.frame", "frame": {"seq": 1}})

    assert await mailbox.next(1) is first
    assert (await mailbox.next(1))["frame"]["seq"] == 1  # type: ignore[index]
    assert layer.sent == []
    handoff.close_mailbox(channel)


async def test_a_channel_of_another_process_is_sent_through_the_layer(layer: CountingLayer) -> None:
    elsewhere = await layer.new_channel()

    await handoff.send(layer, elsewhere, {"type": "executor.cancel", "attempt_id": "a1"})

    assert layer.sent == [elsewhere]
    assert (await layer.receive(elsewhere))["attempt_id"] == "a1"


async def test_a_closed_channel_of_this_process_takes_nothing_more(layer: CountingLayer) -> None:
    channel = handoff.local_name()
    handoff.open_mailbox(channel)
    handoff.close_mailbox(channel)

    await handoff.send(layer, channel, {"type": "executor.frame", "frame": {}})

    assert not handoff.lives_here(channel) and layer.sent == [] and channel not in layer.channels


async def test_a_wait_that_times_out_loses_nothing() -> None:
    mailbox = handoff.Mailbox()

    assert await mailbox.next(0.01) is None
    mailbox.put({"type": "late"})

    assert await mailbox.next(1) == {"type": "late"}


async def test_a_failed_layer_receive_reaches_the_reader() -> None:
    class Broken(LocalChannelLayer):
        async def receive(self, channel: str) -> dict:
            raise ConnectionError("redis is away")

    mailbox = handoff.Mailbox()
    feed = handoff.Feed(partial(Broken().receive, "c"), mailbox)

    with pytest.raises(ConnectionError):
        await mailbox.next(1)
    await feed.close()


async def test_a_reply_channel_receives_on_the_layer_only_once_a_task_goes_to_another_process(
    layer: CountingLayer,
) -> None:
    here, elsewhere = handoff.local_name(), await layer.new_channel()
    handoff.open_mailbox(here)
    reply = ReplyChannel()
    await reply.open()

    assert await reply.address_for(here) == reply.name
    await asyncio.sleep(0)
    assert layer.receiving == 0

    remote_name = await reply.address_for(elsewhere)
    assert await reply.address_for(elsewhere) == remote_name != reply.name
    await asyncio.sleep(0)
    assert layer.receiving == 1  # exactly one, however many remote tasks

    await layer.send(remote_name, {"type": "executor.frame", "frame": {"id": "remote"}})
    await handoff.send(layer, reply.name, {"type": "executor.frame", "frame": {"id": "local"}})
    frames = [(await reply.next(1))["frame"]["id"] for _ in range(2)]  # type: ignore[index]
    assert sorted(frames) == ["local", "remote"]

    await reply.close()
    assert layer.receiving == 0 and not handoff.lives_here(remote_name) and not handoff.lives_here(reply.name)
    handoff.close_mailbox(here)


@pytest.mark.django_db(transaction=True)
async def test_a_call_to_an_executor_of_this_process_never_crosses_the_layer(token: str, layer: CountingLayer) -> None:
    executor = await connect_executor(token)
    exchange = Exchange(Task("POST", "/v1beta/models/m:streamGenerateContent", "alt=sse", {}, b"{}", "m"))
    starting = asyncio.create_task(exchange.start())
    attempt = json.loads(await executor.receive_from())["id"]
    await executor.send_to(
        text_data=json.dumps({"type": "response_start", "id": attempt, "status": 200, "headers": SSE, "data": "b2s="})
    )
    await executor.send_to(text_data=json.dumps({"type": "response_end", "id": attempt, "chunks": 0}))

    head = await asyncio.wait_for(starting, 2)
    body = b"".join([piece async for piece in exchange.body()])
    await exchange.close()

    assert (head.status, body) == (200, b"ok")
    assert layer.sent == [] and layer.receiving == 0
    await executor.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_stored_body_task_and_its_cancel_handed_over_reach_the_executor_in_order(
    token: str, settings, tmp_path, layer: CountingLayer
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    name = default_storage.save("stored/blob.bin", ContentFile(b"x" * 600_000))
    socket = communicator(token)
    assert (await socket.connect())[0]
    await socket.send_to(text_data=json.dumps({**hello(), "features": ["binary_body"]}))
    assert json.loads(await socket.receive_from())["type"] == "welcome"
    lease = await get_registry().acquire("m")
    assert lease is not None and handoff.lives_here(lease.channel_name)
    reply = ReplyChannel()
    await reply.open()
    task = {
        "type": "executor.task",
        "attempt_id": "t1",
        "reply_channel": await reply.address_for(lease.channel_name),
        "method": "POST",
        "path": "/upload/v1beta/files",
        "query": "",
        "headers": {},
        "body": b"",
        "stored_body": {"name": name, "offset": 0, "length": 600_000},
    }

    await reply.send(lease.channel_name, task)
    await reply.send(lease.channel_name, {"type": "executor.cancel", "attempt_id": "t1"})
    request = json.loads(await socket.receive_from())
    kinds = [json.loads(await socket.receive_from())["type"] for _ in range(request["body_chunks"] + 1)]

    assert request["body_chunks"] > 1 and kinds == ["request_body"] * request["body_chunks"] + ["cancel"]
    await reply.close()
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_task_handed_to_a_consumer_that_left_is_answered_as_lost(token: str, layer: CountingLayer) -> None:
    executor = await connect_executor(token)
    lease = await get_registry().acquire("m")
    assert lease is not None
    reply = ReplyChannel()
    await reply.open()
    await executor.send_to(text_data="not json")  # a protocol violation: the consumer leaves and closes
    assert (await executor.receive_output(1))["type"] == "websocket.close"

    task = {"type": "executor.task", "attempt_id": "t1", "reply_channel": reply.name, "method": "GET"}
    await reply.send(lease.channel_name, task)

    # Left the registry but still reading: answered as lost, as through the layer.
    answer = await reply.next(1)
    assert answer is not None and answer["frame"]["code"] == "executor_lost"
    await executor.disconnect()
    await asyncio.sleep(0.05)
    assert not handoff.lives_here(lease.channel_name)
    await reply.close()


async def test_on_a_layer_across_processes_a_reply_channel_listens_from_open_and_stops_at_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from channels_redis.pubsub import RedisPubSubChannelLayer

    redis_layer = RedisPubSubChannelLayer(hosts=["redis://127.0.0.1:6379"], prefix=f"handoff-test-{uuid.uuid4().hex}:")
    monkeypatch.setattr("executors.reply.get_channel_layer", lambda: redis_layer)
    here = handoff.local_name()
    handoff.open_mailbox(here)
    reply = ReplyChannel()
    await reply.open()
    subscribed_at_open = list(redis_layer._get_layer().channels)
    layer_name = await reply.address_for(f"{uuid.uuid4().hex}-of-another-process")

    assert subscribed_at_open == [layer_name]  # before any task: see ReplyChannel.open

    assert await reply.address_for(here) == reply.name != layer_name
    await redis_layer.send(layer_name, {"type": "executor.frame", "frame": {"id": "from elsewhere"}})
    await handoff.send(redis_layer, reply.name, {"type": "executor.frame", "frame": {"id": "from here"}})
    frames = sorted([(await reply.next(2))["frame"]["id"] for _ in range(2)])  # type: ignore[index]

    assert frames == ["from elsewhere", "from here"]
    await reply.close()
    assert not handoff.lives_here(layer_name) and layer_name not in redis_layer._get_layer().channels
    handoff.close_mailbox(here)
    await redis_layer.flush()
