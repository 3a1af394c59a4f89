"""An executor's fault before the first byte is retried elsewhere; after it, the call ends in a clean DispatchError."""

from __future__ import annotations

import asyncio
import json

import pytest

from executors import handoff
from executors.dispatcher import DispatchError, Exchange, Task
from tests.executor_sockets import connect_executor

pytestmark = pytest.mark.django_db(transaction=True)

SSE = {"content-type": "text/event-stream"}


def generate() -> Exchange:
    return Exchange(Task("POST", "/v1beta/models/m:streamGenerateContent", "alt=sse", {}, b"{}", "m"))


async def body_of(exchange: Exchange) -> bytes:
    return b"".join([piece async for piece in exchange.body()])


BAD_HEADS = {
    "status abc": {"status": "abc", "headers": {}},
    "status 999": {"status": 999, "headers": {}},
    "status 0": {"status": 0, "headers": {}},
    "headers as a string": {"status": 200, "headers": "content-type: text/html"},
    "CRLF in a header value": {"status": 200, "headers": {"content-type": "text/plain\r\nx-evil: 1"}},
    "bad base64": {"status": 200, "headers": {}, "data": "%%%", "end": True},
    "no status": {"headers": {}},
}


@pytest.mark.parametrize("head", BAD_HEADS.values(), ids=BAD_HEADS.keys())
async def test_a_bad_head_is_retried_on_another_executor_transparently(token: str, head: dict) -> None:
    faulty = await connect_executor(token, "faulty")
    exchange = generate()
    starting = asyncio.create_task(exchange.start())
    first = json.loads(await faulty.receive_from())
    healthy = await connect_executor(token, "healthy")

    await faulty.send_to(text_data=json.dumps({"type": "response_start", "id": first["id"], **head}))
    second = json.loads(await healthy.receive_from())
    await healthy.send_to(
        text_data=json.dumps(
            {"type": "response_start", "id": second["id"], "status": 200, "headers": SSE, "data": "b2s=", "end": True}
        )
    )

    head_seen = await asyncio.wait_for(starting, 2)
    assert (head_seen.status, await body_of(exchange), exchange.attempts) == (200, b"ok", 2)
    await exchange.close()
    await healthy.disconnect()


async def test_bad_base64_mid_stream_ends_the_call_in_a_dispatch_error_at_once(token: str) -> None:
    executor = await connect_executor(token)
    exchange = generate()
    starting = asyncio.create_task(exchange.start())
    attempt = json.loads(await executor.receive_from())["id"]
    await executor.send_to(
        text_data=json.dumps({"type": "response_start", "id": attempt, "status": 200, "headers": SSE})
    )
    await executor.send_to(text_data=json.dumps({"type": "response_body", "id": attempt, "seq": 0, "data": "b2s="}))
    await asyncio.wait_for(starting, 2)

    await executor.send_to(text_data=json.dumps({"type": "response_body", "id": attempt, "seq": 1, "data": "!!"}))

    with pytest.raises(DispatchError) as raised:
        await asyncio.wait_for(body_of(exchange), 2)
    assert (raised.value.http_status, raised.value.outcome) == (503, "executor_lost")
    await exchange.close()


# What may reach a dispatcher's reply channel from anywhere: the dispatcher must not trust it either.
INJECTED = {
    "no frame": lambda attempt: {"type": "executor.frame"},
    "a frame that is a list": lambda attempt: {"type": "executor.frame", "frame": [attempt]},
    "status abc": lambda attempt: {
        "type": "executor.frame",
        "frame": {"type": "response_start", "id": attempt, "status": "abc", "headers": {}},
    },
    "headers of numbers": lambda attempt: {
        "type": "executor.frame",
        "frame": {"type": "response_start", "id": attempt, "status": 200, "headers": {"a": 1}},
    },
    "bad base64": lambda attempt: {
        "type": "executor.frame",
        "frame": {"type": "response_start", "id": attempt, "status": 200, "headers": {}, "data": "%", "end": True},
    },
}


@pytest.mark.parametrize("message", INJECTED.values(), ids=INJECTED.keys())
async def test_the_dispatcher_answers_anything_it_cannot_read_with_a_dispatch_error(
    token: str, settings, message
) -> None:
    settings.GEMPROXY_DISPATCH_WAIT = 0.2
    executor = await connect_executor(token)
    exchange = generate()
    starting = asyncio.create_task(exchange.start())
    attempt = json.loads(await executor.receive_from())["id"]

    await handoff.send(exchange.reply.layer, exchange.reply.name, message(attempt))

    with pytest.raises(DispatchError) as raised:
        await asyncio.wait_for(starting, 2)
    assert raised.value.http_status == 503
    await exchange.close()
    await executor.disconnect()


async def test_bad_base64_reaching_the_dispatcher_mid_stream_is_a_dispatch_error(token: str) -> None:
    executor = await connect_executor(token)
    exchange = generate()
    starting = asyncio.create_task(exchange.start())
    attempt = json.loads(await executor.receive_from())["id"]
    await executor.send_to(
        text_data=json.dumps({"type": "response_start", "id": attempt, "status": 200, "headers": SSE})
    )
    await executor.send_to(text_data=json.dumps({"type": "response_body", "id": attempt, "seq": 0, "data": "b2s="}))
    await asyncio.wait_for(starting, 2)

    bad = {"type": "response_body", "id": attempt, "seq": 1, "data": "!!"}
    await handoff.send(exchange.reply.layer, exchange.reply.name, {"type": "executor.frame", "frame": bad})

    with pytest.raises(DispatchError) as raised:
        await asyncio.wait_for(body_of(exchange), 2)
    assert raised.value.outcome == "executor_lost"
    await exchange.close()
    await executor.disconnect()


async def test_a_repeated_ack_does_not_abandon_the_attempt(token: str) -> None:
    executor = await connect_executor(token)
    exchange = generate()
    starting = asyncio.create_task(exchange.start())
    attempt = json.loads(await executor.receive_from())["id"]
    await executor.receive_from()  # the body

    for _ in range(2):
        await executor.send_to(text_data=json.dumps({"type": "ack", "id": attempt}))
    whole = {"type": "response_start", "id": attempt, "status": 200, "headers": SSE, "data": "b2s=", "end": True}
    await executor.send_to(text_data=json.dumps(whole))

    head = await asyncio.wait_for(starting, 2)
    assert (head.status, await body_of(exchange), exchange.attempts) == (200, b"ok", 1)
    await exchange.close()
    await executor.disconnect()
