"""Every call has a request id: the client's x-request-id when well-formed (bounded, printable, not shaped
like a secret), else a new one. It is echoed as x-request-id, carried in the task to the executor, logged
by the agent and in the call's log line."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid

import pytest
from channels.layers import get_channel_layer

from executors import protocol, task_checks
from executors.dispatcher import ResponseHead
from executors.registry import get_registry
from tests import agent_harness
from tests.agent_harness import GENERATE_PATH, collect, generate_body
from tests.api_doubles import GENERATE, asgi_call
from tests.executor_sockets import connect_executor

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures"]  # the fixtures exchanges and key_header

fake = agent_harness.fake
gateway = agent_harness.gateway
start_agent = agent_harness.start_agent
link = agent_harness.link

NEW_ID = re.compile(r"[0-9a-f]{32}")


async def test_a_well_formed_client_id_is_echoed_and_sent_to_the_executor(exchanges, key_header) -> None:
    answer = await asgi_call("POST", GENERATE, headers={**key_header, "x-request-id": "lobechat-7f3a:1"}, body=b"{}")

    assert answer.headers["x-request-id"] == "lobechat-7f3a:1"
    assert exchanges.tasks[-1].request_id == "lobechat-7f3a:1"


async def test_an_id_of_128_visible_characters_is_kept(exchanges, key_header) -> None:
    sent = "A" * 64 + "z9-_.:/+=~!" + "b" * 53

    answer = await asgi_call("POST", GENERATE, headers={**key_header, "x-request-id": sent}, body=b"{}")

    assert len(sent) == 128
    assert answer.headers["x-request-id"] == sent


@pytest.mark.parametrize(
    "sent",
    [
        "",
        "a b",
        "tab\there",
        "x" * 129,
        "caf\u00e9",
        'quo"te',
        "back\\slash",
        "gpk_AbCdEf0123456789",  # a proxy key pasted in the wrong header
        "trace-gpe_secret",
        "AIzaSyA-google-api-key",
    ],
    ids=["empty", "space", "tab", "too-long", "non-ascii", "quote", "backslash", "proxy-key", "token", "google-key"],
)
async def test_any_other_id_is_replaced_by_a_new_one(exchanges, key_header, sent: str) -> None:
    headers = {**key_header, "x-request-id": sent}
    answer = await asgi_call("POST", GENERATE, headers=headers, body=b"{}")

    assert NEW_ID.fullmatch(answer.headers["x-request-id"])
    assert exchanges.tasks[-1].request_id == answer.headers["x-request-id"]


async def test_without_an_id_each_call_gets_its_own(exchanges, key_header) -> None:
    ids = [
        (await asgi_call("POST", GENERATE, headers=key_header, body=b"{}")).headers["x-request-id"] for _ in range(3)
    ]

    assert all(NEW_ID.fullmatch(each) for each in ids)
    assert len(set(ids)) == 3


async def test_an_upstream_id_header_does_not_replace_the_gateways(exchanges, key_header) -> None:
    exchanges.head = ResponseHead(200, {"content-type": "application/json", "x-request-id": "from-the-executor"})

    answer = await asgi_call("POST", GENERATE, headers={**key_header, "x-request-id": "mine"}, body=b"{}")

    assert answer.headers["x-request-id"] == "mine"


async def test_refusals_carry_the_id_too(exchanges, amake_key) -> None:
    _, secret = await amake_key(rpm=1)
    headers = {"x-goog-api-key": secret, "x-request-id": "limited-1"}

    assert (await asgi_call("POST", GENERATE, headers=headers, body=b"{}")).status == 200
    refused = await asgi_call("POST", GENERATE, headers=headers, body=b"{}")
    unauthenticated = await asgi_call("POST", GENERATE, headers={"x-request-id": "nokey-1"}, body=b"{}")

    assert (refused.status, refused.headers["x-request-id"]) == (429, "limited-1")
    assert (unauthenticated.status, unauthenticated.headers["x-request-id"]) == (403, "nokey-1")


async def test_a_stream_carries_the_id(exchanges, key_header) -> None:
    exchanges.pieces = [b'[{"candidates": []}]']

    answer = await asgi_call(
        "POST",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        query="alt=sse",
        headers={**key_header, "x-request-id": "stream-9"},
        body=b"{}",
    )

    assert answer.headers["x-request-id"] == "stream-9"


async def test_the_calls_log_line_names_the_id(exchanges, key_header, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gemproxy.calls")

    await asgi_call("POST", GENERATE, headers={**key_header, "x-request-id": "find-me-42"}, body=b"{}")

    [line] = [record for record in caplog.records if record.name == "gemproxy.calls"]
    assert line.getMessage().endswith("request_id=find-me-42")
    assert line.request_id == "find-me-42"  # type: ignore[attr-defined]


async def test_the_consumer_puts_the_id_in_the_request_frame(token) -> None:
    socket = await connect_executor(token)
    try:
        layer = get_channel_layer()
        lease = await get_registry().acquire("m")
        assert lease is not None
        await layer.send(
            lease.channel_name,
            {
                "type": "executor.task",
                "attempt_id": "attempt-1",
                "reply_channel": await layer.new_channel(),
                "method": "GET",
                "path": "/v1/models",
                "query": "",
                "headers": {},
                "body": b"",
                "request_id": "trace-77",
            },
        )
        frame = json.loads(await socket.receive_from())
    finally:
        await socket.disconnect()

    assert (frame["type"], frame["id"], frame["request_id"]) == ("request", "attempt-1", "trace-77")


def test_the_executor_keeps_a_well_formed_id_and_leaves_out_any_other() -> None:
    frame = {"type": "request", "id": "a1", "method": "GET", "path": "/v1/models", "query": "", "body_chunks": 0}

    assert task_checks.read_request({**frame, "request_id": "trace-77"})["request_id"] == "trace-77"
    for bad in ("", "a b", "x" * 129, 7, None, "line\nbreak", ["x"]):
        assert "request_id" not in task_checks.read_request({**frame, "request_id": bad})
    assert "request_id" not in task_checks.read_request(frame)


async def test_the_agent_logs_the_id_with_its_line_for_the_task(link, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="gemproxy.agent")  # a successful call's line is at DEBUG
    task_id = uuid.uuid4().hex
    body = generate_body("traced")
    await link.send(
        {
            "type": "request",
            "id": task_id,
            "method": "POST",
            "path": GENERATE_PATH,
            "query": "",
            "headers": {"content-type": "application/json"},
            "body_chunks": 1,
            "request_id": "trace-from-gateway",
        }
    )
    await link.send({"type": "request_body", "id": task_id, "seq": 0, "data": protocol.encode_body(body)})
    await collect(link, task_id)
    await asyncio.sleep(0)  # the runner logs in its finally, after response_end

    [line] = [record for record in caplog.records if GENERATE_PATH in record.getMessage()]
    assert line.getMessage().endswith("request_id=trace-from-gateway")
    assert line.request_id == "trace-from-gateway"  # type: ignore[attr-defined]
