"""An executor that breaks the protocol costs the client nothing before the first byte and no hang after it."""

from __future__ import annotations

import json
import time

import httpx2 as httpx

from executors import protocol
from tests.e2e.harness import Deployment, ScriptedExecutor, ThreadedUpstream, wait_until

SSE = {"content-type": "text/event-stream"}
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
EVENT = protocol.encode_body(b'data: {"candidates": [{"content": {"parts": [{"text": "half"}]}}]}\r\n\r\n')


def last_outcome(deployment: Deployment) -> str:
    return deployment.manage(
        "shell",
        "-c",
        "from accounts.models import UsageRecord; "
        "print(UsageRecord.objects.order_by('-id').values_list('outcome', flat=True).first())",
    )


def test_bad_base64_mid_stream_ends_the_stream_in_a_google_shaped_error_at_once(
    deployment: Deployment, proxy_key: str
) -> None:
    gateway = deployment.start_gateway("gw-bad-bytes")
    token = deployment.executor_token("bad-bytes@example.com")
    executor = ScriptedExecutor(
        gateway,
        token,
        lambda request: [
            {"type": "response_start", "status": 200, "headers": SSE},
            {"type": "response_body", "seq": 0, "data": EVENT},
            {"type": "response_body", "seq": 1, "data": "this is not base64!"},
        ],
    )
    gateway.wait_for_executors(1)
    started = time.monotonic()

    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        response = http.post(
            STREAM, json={"contents": [{"parts": [{"text": "hi"}]}]}, headers={"x-goog-api-key": proxy_key}
        )

    assert time.monotonic() - started < 5
    first, error = [json.loads(line.removeprefix("data: ")) for line in response.text.split("\n") if line.strip()]
    assert first["candidates"][0]["content"]["parts"][0]["text"] == "half"
    assert error["error"]["code"] == 503 and error["error"]["status"] == "UNAVAILABLE"
    wait_until(lambda: executor._socket.close_code is not None, 5, "the executor to be closed")
    assert executor._socket.close_code == protocol.CLOSE_PROTOCOL_ERROR
    wait_until(lambda: last_outcome(deployment) == "executor_lost", 10, "the call recorded as executor_lost")


BAD_HEADS = [
    {"status": "abc", "headers": SSE},
    {"status": 999, "headers": SSE},
    {"status": 0, "headers": SSE},
    {"status": 200, "headers": ["content-type"]},
    {"status": 200, "headers": {"content-type": "text/plain\r\nset-cookie: a=b"}},
    {"status": 200, "headers": SSE, "data": "%%%", "end": True},
    {"status": 200, "headers": SSE, "end": True, "data": None},
]


def test_a_bad_head_is_retried_on_a_healthy_executor(
    deployment: Deployment, executor_token: str, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway("gw-bad-head")
    deployment.start_agent(gateway, executor_token, upstream.url, name="healthy-agent")
    token = deployment.executor_token("bad-head@example.com")

    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        for head in BAD_HEADS:
            faulty = ScriptedExecutor(gateway, token, lambda request, head=head: [{"type": "response_start", **head}])
            gateway.wait_for_executors(2)
            # Ties take turns, so one of two calls in a row reaches the faulty executor.
            answers = [
                http.post(
                    "/v1beta/models/gemini-2.5-flash:generateContent",
                    json={"contents": [{"parts": [{"text": f"retried {n}"}]}]},
                    headers={"x-goog-api-key": proxy_key},
                )
                for n in range(2)
            ]

            assert [answer.status_code for answer in answers] == [200, 200], (head, answers[0].text)
            assert "request" in faulty.kinds(), head
            wait_until(lambda faulty=faulty: faulty._socket.close_code == protocol.CLOSE_PROTOCOL_ERROR, 5, "4002")
            gateway.wait_for_executors(1)
