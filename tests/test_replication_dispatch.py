"""The dispatcher follows a call's resources: only their accounts, their binder per attempt, one retry after a loss."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from asgiref.sync import sync_to_async

from executors.dispatcher import DispatchError, Exchange, Task
from executors.models import ExecutorAccount
from tests.executor_sockets import connect_executor, new_token

pytestmark = pytest.mark.django_db(transaction=True)

JSON = {"content-type": "application/json"}


class RecordingBinder:
    def __init__(self, lose_once: bool = False) -> None:
        self.bodies_for: list[int] = []
        self.losses: list[tuple[int, int]] = []
        self.lose_once = lose_once

    async def body_for(self, account_id: int) -> bytes:
        self.bodies_for.append(account_id)
        return json.dumps({"for": account_id, "round": len(self.bodies_for)}).encode()

    async def lost(self, account_id: int, status: int, body: bytes) -> bool:
        self.losses.append((account_id, status))
        lost, self.lose_once = self.lose_once, False
        return lost


def generate(**fields) -> Exchange:
    return Exchange(Task("POST", "/v1beta/models/m:generateContent", "", JSON, b"{}", "m", **fields))


async def answer(executor, status: int, body: bytes = b"{}") -> dict:
    request = json.loads(await executor.receive_from())
    pieces = [json.loads(await executor.receive_from()) for _ in range(request["body_chunks"])]
    data = base64.b64encode(body).decode()
    await executor.send_to(
        text_data=json.dumps(
            {
                "type": "response_start",
                "id": request["id"],
                "status": status,
                "headers": JSON,
                "data": data,
                "end": True,
            }
        )
    )
    request["body"] = b"".join(base64.b64decode(p["data"]) for p in pieces)
    return request


async def test_a_call_whose_account_has_no_executor_fails_at_once_with_503(token: str, settings) -> None:
    settings.GEMPROXY_DISPATCH_WAIT = 10
    executor = await connect_executor(token)
    exchange = generate(accounts=frozenset({999_999}))
    began = time.monotonic()

    with pytest.raises(DispatchError) as raised:
        await exchange.start()

    assert time.monotonic() - began < 1
    assert (raised.value.http_status, raised.value.status) == (503, "UNAVAILABLE")
    assert "has no executor connected" in raised.value.message
    await exchange.close()
    await executor.disconnect()


async def test_the_binder_gives_the_body_for_the_account_that_serves(token: str) -> None:
    executor = await connect_executor(token)
    account = await ExecutorAccount.objects.aget()
    binder = RecordingBinder()
    exchange = generate(binder=binder)

    starting = asyncio.create_task(exchange.start())
    sent = await answer(executor, 200)
    head = await asyncio.wait_for(starting, 2)

    assert head.status == 200
    assert binder.bodies_for == [account.pk]
    assert json.loads(sent["body"]) == {"for": account.pk, "round": 1}
    await exchange.close()
    await executor.disconnect()


async def test_an_answer_about_a_lost_copy_is_retried_once_with_a_fresh_body(token: str) -> None:
    executor = await connect_executor(token)
    binder = RecordingBinder(lose_once=True)
    exchange = generate(binder=binder)

    starting = asyncio.create_task(exchange.start())
    await answer(executor, 403, b'{"error": {"code": 403}}')
    second = await answer(executor, 200, b'{"ok": true}')
    head = await asyncio.wait_for(starting, 2)

    assert head.status == 200 and exchange.attempts == 2
    assert json.loads(second["body"])["round"] == 2
    await exchange.close()
    await executor.disconnect()


async def test_a_second_loss_is_relayed_not_retried_forever(token: str) -> None:
    executor = await connect_executor(token)
    binder = RecordingBinder(lose_once=True)
    exchange = generate(binder=binder)

    starting = asyncio.create_task(exchange.start())
    await answer(executor, 403)
    binder.lose_once = True  # it would say "lost" again
    await answer(executor, 403)
    head = await asyncio.wait_for(starting, 2)

    assert head.status == 403 and exchange.attempts == 2
    await exchange.close()
    await executor.disconnect()


async def test_the_account_of_a_relayed_refusal_is_the_one_that_refused(token: str) -> None:
    first_executor = await connect_executor(token, "on-a")
    second_executor = await connect_executor(await sync_to_async(new_token)("bea@example.com"), "on-b")
    exchange = generate()

    starting = asyncio.create_task(exchange.start())
    sockets = [first_executor, second_executor]
    refusing = await first_to_receive(sockets)
    other = sockets[1 - sockets.index(refusing)]
    await answer(refusing, 503)  # kept as the fallback
    failed = json.loads(await other.receive_from())
    await other.send_to(
        text_data=json.dumps({"type": "error", "id": failed["id"], "code": "upstream_unreachable", "message": "x"})
    )
    head = await asyncio.wait_for(starting, 5)

    label = "ana@example.com" if refusing is first_executor else "bea@example.com"
    refuser = await ExecutorAccount.objects.aget(label=label)
    assert head.status == 503
    assert (exchange.account_id, exchange.account_label) == (refuser.pk, label)
    await exchange.close()
    for socket in sockets:
        await socket.disconnect()


async def first_to_receive(sockets: list) -> object:
    """The socket whose task frame arrives first; that frame is put back for ``answer`` to read."""
    while True:
        for socket in sockets:
            if not await socket.receive_nothing(timeout=0.05):
                return socket
