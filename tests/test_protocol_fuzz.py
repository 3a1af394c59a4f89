"""Fuzzing the executor protocol: hostile frames never kill a consumer, never leave a stale executor, never hang a call.

Each example connects an executor to the real consumer, hands it a call through
the real dispatcher, sends random and mutated frames (wrong types, huge or
binary payloads, CR/LF and NUL, deep nesting, bad base64, frames out of order
or for unknown ids), and checks the outcome: the socket is open or closed with
4002 (never 1011, never an exception), a closed executor is out of the
registry, the call ends promptly in an answer or a DispatchError, and the next
call is served.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executors import protocol
from executors.dispatcher import DispatchError, Exchange, Task
from executors.registry import get_registry
from tests.executor_sockets import connect_executor

pytestmark = pytest.mark.django_db(transaction=True)

ATTEMPT = "<attempt>"  # replaced by the call's attempt id when sent
PROMPTLY = 3.0  # seconds: far below every dispatcher timeout, so a wait this long is a hang
# Bounded for CI; GEMPROXY_FUZZ_EXAMPLES raises it for a longer run by hand (as for tests/e2e/test_api_fuzz.py).
EXAMPLES = 2 * int(os.environ.get("GEMPROXY_FUZZ_EXAMPLES", "60"))

HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "a\r\nb: c", "\x00", "\ud800", "x" * 20_000, "!!not base64", "e30", "é", ATTEMPT]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
HEADERS = st.one_of(
    st.just({"content-type": "application/json"}),
    st.dictionaries(st.text(max_size=20), st.one_of(st.text(max_size=20), HOSTILE_VALUES), max_size=4),
    HOSTILE_VALUES,
)


def valid_frames(draw: st.DrawFn) -> dict:
    return draw(
        st.sampled_from(
            [
                {"type": "ack", "id": ATTEMPT},
                {"type": "response_start", "id": ATTEMPT, "status": 200, "headers": {"content-type": "text/plain"}},
                {"type": "response_start", "id": ATTEMPT, "status": 200, "headers": {}, "data": "b2s=", "end": True},
                {"type": "response_body", "id": ATTEMPT, "seq": 0, "data": "b2s="},
                {"type": "response_body", "id": ATTEMPT, "seq": 1, "data": ""},
                {"type": "response_end", "id": ATTEMPT, "chunks": 1},
                {"type": "error", "id": ATTEMPT, "code": "upstream_unreachable", "message": "refused"},
                {"type": "pong", "nonce": "1"},
                {"type": "progress", "id": ATTEMPT},
                {"type": "ack", "id": "an-attempt-nobody-knows"},
            ]
        )
    )


@st.composite
def frames(draw: st.DrawFn) -> str | bytes:
    """One message as an executor could send it: valid, mutated, or raw junk."""
    kind = draw(st.sampled_from(["valid", "mutated", "mutated", "headers", "raw", "deep", "binary"]))
    if kind == "raw":
        return draw(st.text(max_size=200))
    if kind == "deep":
        depth = draw(st.integers(min_value=500, max_value=200_000))
        return draw(st.sampled_from(["[", '{"a":'])) * depth
    if kind == "binary":
        return draw(st.binary(max_size=200))
    frame = dict(valid_frames(draw))
    if kind == "mutated":
        field = draw(st.sampled_from([*frame, "type", "id", "status", "seq", "data", "code", "message", "end"]))
        frame[field] = draw(HOSTILE_VALUES)
    elif kind == "headers":
        frame = {"type": "response_start", "id": ATTEMPT, "status": 200, "headers": draw(HEADERS)}
    return json.dumps(frame)


@pytest.fixture(autouse=True)
def quick_dispatch(settings) -> None:
    settings.GEMPROXY_DISPATCH_WAIT = 0.05


def a_call() -> Exchange:
    return Exchange(Task("POST", "/v1beta/models/m:generateContent", "", {}, b"{}", "m"))


async def call_outcome(exchange: Exchange, starting: asyncio.Task) -> str:
    """How the call ended: "answered" or "dispatch_error"; anything else (or a hang) fails the example."""
    try:
        await asyncio.wait_for(starting, PROMPTLY)
        await asyncio.wait_for(_drain(exchange), PROMPTLY)
        return "answered"
    except DispatchError:
        return "dispatch_error"
    finally:
        await exchange.close()


async def _drain(exchange: Exchange) -> None:
    async for _ in exchange.body():
        pass


async def task_received(executor) -> str:
    """The attempt id of the task the executor was just sent, its body frames read too."""
    request = json.loads(await executor.receive_from(PROMPTLY))
    for _ in range(request["body_chunks"]):
        await executor.receive_from(PROMPTLY)
    return request["id"]


async def outputs(executor) -> list[dict]:
    """What the consumer sent once the frames were handled: a cancel perhaps, a close perhaps."""
    sent = []
    while not await executor.receive_nothing(timeout=0.05, interval=0.01):
        sent.append(await executor.receive_output())
    return sent


async def still_serves(token: str) -> None:
    executor = await connect_executor(token, "afterwards")
    exchange = a_call()
    starting = asyncio.create_task(exchange.start())
    attempt = await task_received(executor)
    whole = {"type": "response_start", "id": attempt, "status": 200, "headers": {}, "data": "b2s=", "end": True}
    await executor.send_to(text_data=json.dumps(whole))
    assert (await asyncio.wait_for(starting, PROMPTLY)).status == 200
    await exchange.close()
    await executor.disconnect()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=st.lists(frames(), min_size=1, max_size=6))
async def test_hostile_frames_never_kill_the_consumer_or_hang_a_call(token: str, messages: list) -> None:
    get_registry.cache_clear()
    executor = await connect_executor(token)
    exchange = a_call()
    starting = asyncio.create_task(exchange.start())
    try:
        attempt = await task_received(executor)
        for message in messages:
            # send_input, not send_to: an empty frame is a frame too
            if isinstance(message, bytes):
                await executor.send_input({"type": "websocket.receive", "bytes": message})
            else:
                await executor.send_input({"type": "websocket.receive", "text": message.replace(ATTEMPT, attempt)})
        closes = [output for output in await outputs(executor) if output["type"] == "websocket.close"]

        if closes:
            assert closes == [{"type": "websocket.close", "code": protocol.CLOSE_PROTOCOL_ERROR}]
            assert await get_registry().snapshot() == []
        else:
            assert not executor.future.done(), "the consumer died"
            await executor.disconnect()  # the executor leaves; a call still waiting on it must end now
        assert await call_outcome(exchange, starting) in ("answered", "dispatch_error")
        assert await get_registry().snapshot() == []
    finally:
        starting.cancel()
        await exchange.close()
        await executor.disconnect()
    await still_serves(token)
