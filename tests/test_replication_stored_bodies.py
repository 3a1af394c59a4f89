"""A task whose body is a stored file travels as a reference and reaches the executor as numbered frames."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.layers import get_channel_layer
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from executors import protocol
from executors.dispatcher import DispatchError, Exchange, StoredBody, Task
from executors.registry import get_registry
from tests.executor_sockets import communicator, connect_executor, hello

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def storage(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    return default_storage


async def capable_executor(token: str, executor_id: str = "new") -> object:
    socket = communicator(token)
    assert (await socket.connect())[0]
    await socket.send_to(text_data=json.dumps({**hello(executor_id), "features": ["binary_body", "later_thing"]}))
    assert json.loads(await socket.receive_from())["type"] == "welcome"
    return socket


async def send_stored_task(attempt_id: str, stored: dict) -> str:
    layer = get_channel_layer()
    reply = await layer.new_channel()
    lease = await get_registry().acquire("m")
    assert lease is not None
    await layer.send(
        lease.channel_name,
        {
            "type": "executor.task",
            "attempt_id": attempt_id,
            "reply_channel": reply,
            "method": "POST",
            "path": "/upload/v1beta/files",
            "query": "upload_id=u1&upload_protocol=resumable",
            "headers": {"x-goog-upload-command": "upload"},
            "body": b"",
            "stored_body": stored,
        },
    )
    return reply


async def test_a_stored_body_arrives_as_numbered_frames_of_the_slice_asked_for(token: str, storage) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    name = storage.save("stored/blob.bin", ContentFile(data))
    executor = await capable_executor(token)

    await send_stored_task("t1", {"name": name, "offset": 1000, "length": 600_000})
    request = json.loads(await executor.receive_from())
    pieces = [json.loads(await executor.receive_from()) for _ in range(request["body_chunks"])]

    assert request["body_chunks"] == 3 and request["path"] == "/upload/v1beta/files"
    assert [piece["seq"] for piece in pieces] == [0, 1, 2]
    assert all(len(protocol.dumps(piece)) < 1024 * 1024 for piece in pieces)
    assert b"".join(protocol.decode_body(piece["data"]) for piece in pieces) == data[1000:601_000]
    await executor.disconnect()


async def test_a_body_missing_from_storage_fails_the_attempt_at_once(token: str, storage) -> None:
    executor = await capable_executor(token)

    reply = await send_stored_task("t2", {"name": "stored/gone.bin", "offset": 0, "length": 10})
    answer = await asyncio.wait_for(get_channel_layer().receive(reply), 2)

    assert answer["frame"]["type"] == "error" and answer["frame"]["id"] == "t2"
    assert await executor.receive_nothing()  # the executor never saw a task it could not be given whole
    await executor.disconnect()


async def test_a_stored_body_shorter_than_announced_cancels_the_task(token: str, storage) -> None:
    name = storage.save("stored/short.bin", ContentFile(b"x" * 300_000))
    executor = await capable_executor(token)

    reply = await send_stored_task("t3", {"name": name, "offset": 0, "length": 700_000})
    kinds = [json.loads(await executor.receive_from())["type"] for _ in range(3)]
    answer = await asyncio.wait_for(get_channel_layer().receive(reply), 2)

    assert kinds == ["request", "request_body", "cancel"]
    assert answer["frame"]["type"] == "error"
    await executor.disconnect()


async def test_an_executor_that_did_not_announce_binary_bodies_is_never_sent_one(token: str, settings) -> None:
    settings.GEMPROXY_DISPATCH_WAIT = 0.2
    old = await connect_executor(token, "old")
    task = Task("POST", "/upload/v1beta/files", "upload_id=u", {}, StoredBody("stored/x", 0, 1), "")
    exchange = Exchange(task)

    with pytest.raises(DispatchError) as raised:
        await exchange.start()

    assert raised.value.http_status == 503
    assert await old.receive_nothing()
    await exchange.close()
    await old.disconnect()


async def test_features_a_gateway_does_not_know_are_dropped_from_the_hello() -> None:
    frame = protocol.parse_executor_frame(json.dumps({**hello(), "features": ["binary_body", "x", "binary_body"]}))

    assert frame is not None and frame["features"] == ["binary_body"]


@pytest.mark.parametrize("features", ["binary_body", [1], ["Bad Name"], ["f"] * 33])
def test_a_malformed_features_list_is_a_protocol_violation(features: object) -> None:
    with pytest.raises(protocol.ProtocolViolation):
        protocol.parse_executor_frame(json.dumps({**hello(), "features": features}))
