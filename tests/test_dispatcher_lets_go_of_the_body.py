"""Once an answer is chosen, the dispatcher keeps no copy of the request's body for as long as it streams."""

from __future__ import annotations

import asyncio
import gc
import json

import pytest

from executors.dispatcher import Exchange, Task
from tests.executor_sockets import connect_executor

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_streaming_answer_does_not_keep_the_body_it_was_sent(token: str) -> None:
    executor = await connect_executor(token)
    prompt = b'{"contents": "' + b"x" * 100_000 + b'"}'
    exchange = Exchange(Task("POST", "/v1beta/models/m:streamGenerateContent", "alt=sse", {}, prompt, "m"))
    starting = asyncio.create_task(exchange.start())
    task = json.loads(await executor.receive_from())
    assert task["type"] == "request"
    await executor.send_to(
        text_data=json.dumps({"type": "response_start", "id": task["id"], "status": 200, "headers": {}, "data": "b2s="})
    )
    await asyncio.wait_for(starting, 2)

    holders = gc.get_referrers(prompt)
    assert not any(holder is exchange or holder is exchange.task for holder in holders)
    assert exchange.task.body == b""

    await exchange.close()
    await executor.disconnect()
