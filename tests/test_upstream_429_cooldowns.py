"""An upstream 429 cools its account down for the model as long as the upstream said; when every account
that could serve the model cools down, the call is refused at once, never after a wait for a slot."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from executors.dispatcher import CoolingDown, DispatchError, Exchange, Task
from executors.models import ExecutorAccount
from executors.registry import get_registry
from tests.executor_sockets import connect_executor, new_token

pytestmark = pytest.mark.django_db(transaction=True)

JSON = {"content-type": "application/json"}
MODEL = "gemini-2.5-flash"


@pytest.fixture(autouse=True)
def fresh_registry(settings) -> None:
    settings.GEMPROXY_DISPATCH_WAIT = 10  # long: a test that waits for it fails on its own timeouts
    get_registry.cache_clear()


@pytest.fixture
def tokens(db) -> dict[str, str]:
    return {label: new_token(label) for label in ("ana@example.com", "bob@example.com")}


async def account_id(label: str) -> int:
    return (await sync_to_async(ExecutorAccount.objects.get)(label=label)).pk


def call() -> Exchange:
    return Exchange(Task("POST", f"/v1beta/models/{MODEL}:generateContent", "", JSON, b"{}", MODEL))


def google_429(retry_delay: str | None = "36.2s") -> bytes:
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}] if retry_delay else []
    return json.dumps({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": details}}).encode()


async def next_task(*sockets: WebsocketCommunicator) -> tuple[WebsocketCommunicator, str]:
    """The executor that was given the task, and the attempt's id (polled: a communicator's timeout kills it)."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for socket in sockets:
            if not socket.output_queue.empty():
                frame = json.loads(await socket.receive_from())
                assert frame["type"] == "request", frame
                for _ in range(frame["body_chunks"]):
                    await socket.receive_from()
                return socket, frame["id"]
        await asyncio.sleep(0.01)
    raise AssertionError("no executor was given the task")


async def answer(socket: WebsocketCommunicator, attempt: str, status: int, body: bytes, headers=None) -> None:
    frame = {"type": "response_start", "id": attempt, "status": status, "headers": headers or JSON}
    await socket.send_to(text_data=json.dumps({**frame, "data": base64.b64encode(body).decode(), "end": True}))


async def body_of(exchange: Exchange) -> bytes:
    return b"".join([piece async for piece in exchange.body()])


async def test_a_429_moves_the_call_to_another_account_and_cools_the_first_as_long_as_it_said(tokens) -> None:
    ana = await connect_executor(tokens["ana@example.com"], "ana-tab")
    bob = await connect_executor(tokens["bob@example.com"], "bob-tab")
    exchange = call()
    starting = asyncio.create_task(exchange.start())
    refusing, attempt = await next_task(ana, bob)
    await answer(refusing, attempt, 429, google_429("36.2s"))
    serving, attempt = await next_task(ana, bob)
    await answer(serving, attempt, 200, b'{"candidates": []}')

    head = await asyncio.wait_for(starting, 3)

    refused = "ana@example.com" if refusing is ana else "bob@example.com"
    assert serving is not refusing
    assert (head.status, exchange.attempts, exchange.refused_by) == (200, 2, [refused])
    [cooldown] = await get_registry().cooldowns()
    assert (cooldown.account_label, cooldown.model) == (refused, MODEL)
    assert cooldown.until == pytest.approx(time.time() + 36.2, abs=1)
    await exchange.close()


@pytest.mark.parametrize(
    ("headers", "body", "cooled_for"),
    [
        ({**JSON, "retry-after": "17"}, google_429(None), 17),
        (JSON, google_429(None), 42),
        (JSON, google_429("99999999s"), 42),
        (JSON, b"<html>429 Too Many Requests</html>", 42),
    ],
    ids=["Retry-After", "nothing said", "a hostile delay", "not JSON"],
)
async def test_without_a_sound_retry_info_the_cooldown_follows_retry_after_else_the_setting(
    tokens, settings, headers, body, cooled_for
) -> None:
    settings.GEMPROXY_COOLDOWN = 42
    settings.GEMPROXY_MAX_ATTEMPTS = 1
    ana = await connect_executor(tokens["ana@example.com"])
    exchange = call()
    starting = asyncio.create_task(exchange.start())
    _, attempt = await next_task(ana)
    await answer(ana, attempt, 429, body, headers)

    head = await asyncio.wait_for(starting, 3)

    assert head.status == 429
    [cooldown] = await get_registry().cooldowns()
    assert cooldown.until == pytest.approx(time.time() + cooled_for, abs=1)
    await exchange.close()


async def test_when_every_account_cools_down_the_call_is_refused_at_once_with_the_first_free_time(tokens) -> None:
    await connect_executor(tokens["ana@example.com"])
    await connect_executor(tokens["bob@example.com"])
    await get_registry().cool_down(await account_id("ana@example.com"), MODEL, 30)
    await get_registry().cool_down(await account_id("bob@example.com"), MODEL, 11.5)
    exchange = call()
    began = time.monotonic()

    with pytest.raises(CoolingDown) as raised:
        await exchange.start()

    assert time.monotonic() - began < 0.5
    assert (raised.value.http_status, raised.value.status, raised.value.retry_after) == (429, "RESOURCE_EXHAUSTED", 12)
    assert (exchange.attempts, exchange.account_label) == (0, "")
    await exchange.close()


async def test_the_last_account_refusing_ends_the_call_at_once_with_the_earliest_end(tokens) -> None:
    ana = await connect_executor(tokens["ana@example.com"])
    await connect_executor(tokens["bob@example.com"])
    await get_registry().cool_down(await account_id("bob@example.com"), MODEL, 4.2)
    exchange = call()
    starting = asyncio.create_task(exchange.start())
    _, attempt = await next_task(ana)
    await answer(ana, attempt, 429, google_429("30s"))

    with pytest.raises(CoolingDown) as raised:
        await asyncio.wait_for(starting, 0.5)

    assert raised.value.retry_after == 5
    assert (exchange.attempts, exchange.account_label, exchange.refused_by) == (
        1,
        "ana@example.com",
        ["ana@example.com"],
    )
    await exchange.close()


async def test_an_account_whose_executors_are_busy_means_waiting_for_a_slot(tokens) -> None:
    await connect_executor(tokens["ana@example.com"])
    bob = await connect_executor(tokens["bob@example.com"], slots=1)
    await get_registry().cool_down(await account_id("ana@example.com"), MODEL, 30)
    holding = call()
    held = asyncio.create_task(holding.start())
    _, first = await next_task(bob)

    waiting = call()
    second = asyncio.create_task(waiting.start())
    await asyncio.sleep(0.5)
    assert not second.done()

    await answer(bob, first, 200, b"{}")
    await asyncio.wait_for(held, 3)
    await holding.close()
    _, attempt = await next_task(bob)
    await answer(bob, attempt, 200, b"{}")
    assert (await asyncio.wait_for(second, 3)).status == 200
    await waiting.close()


async def test_a_cooldown_that_ends_while_a_call_waits_frees_its_account_for_it(tokens) -> None:
    ana = await connect_executor(tokens["ana@example.com"])
    bob = await connect_executor(tokens["bob@example.com"], slots=1)
    await get_registry().cool_down(await account_id("ana@example.com"), MODEL, 0.5)
    holding = call()
    held = asyncio.create_task(holding.start())
    await next_task(bob)  # never answered: bob stays busy

    waiting = call()
    began = time.monotonic()
    second = asyncio.create_task(waiting.start())
    _, attempt = await next_task(ana)
    await answer(ana, attempt, 200, b"{}")

    assert (await asyncio.wait_for(second, 3)).status == 200
    assert 0.4 < time.monotonic() - began < 1.5
    await waiting.close()
    held.cancel()
    await holding.close()


async def test_a_model_without_any_executor_is_still_unavailable_after_the_wait(tokens, settings) -> None:
    settings.GEMPROXY_DISPATCH_WAIT = 0.3
    await get_registry().cool_down(await account_id("ana@example.com"), MODEL, 30)  # its executor has gone

    with pytest.raises(DispatchError) as raised:
        await call().start()

    assert not isinstance(raised.value, CoolingDown)
    assert raised.value.http_status == 503


async def test_an_upstream_429_relayed_while_others_are_busy_says_when_and_names_the_refusing_account(
    tokens,
) -> None:
    bob = await connect_executor(tokens["bob@example.com"], slots=1)
    holding = call()
    held = asyncio.create_task(holding.start())
    await next_task(bob)  # never answered: bob stays busy
    ana = await connect_executor(tokens["ana@example.com"])

    exchange = call()
    starting = asyncio.create_task(exchange.start())
    _, attempt = await next_task(ana)
    await answer(ana, attempt, 429, google_429("36s"))

    head = await asyncio.wait_for(starting, 3)

    assert (head.status, head.headers["Retry-After"]) == (429, "36")
    assert json.loads(await body_of(exchange))["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert (exchange.account_label, exchange.refused_by) == ("ana@example.com", ["ana@example.com"])
    await exchange.close()
    held.cancel()
    await holding.close()


async def test_an_upstream_error_kept_for_relaying_survives_a_later_executor_lost(tokens) -> None:
    ana = await connect_executor(tokens["ana@example.com"])
    bob = await connect_executor(tokens["bob@example.com"])
    exchange = call()
    starting = asyncio.create_task(exchange.start())
    overloaded, attempt = await next_task(ana, bob)
    await answer(overloaded, attempt, 503, b'{"error": {"code": 503, "status": "UNAVAILABLE"}}')
    lost, attempt = await next_task(ana, bob)
    await lost.send_to(text_data=json.dumps({"type": "error", "id": attempt, "code": "upstream_unreachable"}))

    head = await asyncio.wait_for(starting, 3)

    assert head.status == 503
    assert json.loads(await body_of(exchange))["error"]["status"] == "UNAVAILABLE"
    assert exchange.account_label == ("ana@example.com" if overloaded is ana else "bob@example.com")
    await exchange.close()
