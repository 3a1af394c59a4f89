"""Every way an attempt can stall ends in a clear Gemini error for the client and a cancel for the executor."""

from __future__ import annotations

import json

import httpx2 as httpx
import pytest
from google.genai import errors

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, ScriptedExecutor, ThreadedUpstream, wait_until


def test_an_executor_that_never_acknowledges_is_passed_over(
    deployment: Deployment, executor_token: str, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway("gw-no-ack", GEMPROXY_ACK_TIMEOUT="1")
    silent = ScriptedExecutor(gateway, executor_token)  # never answers: a tab frozen by the browser, say
    deployment.start_agent(gateway, executor_token, upstream.url, name="acks")
    gateway.wait_for_executors(2)
    client = sdk_client(gateway, proxy_key)

    # Ties between the two executors are taken in turn, so at least one of two
    # calls is offered to the silent one first.
    answers = [client.models.generate_content(model="gemini-2.5-flash", contents=f"ack me {n}") for n in range(2)]

    assert [answer.text.split()[3] for answer in answers] == ["0", "1"]
    assert silent.kinds().count("request") >= 1
    wait_until(lambda: "cancel" in silent.kinds(), what="the silent executor's task to be withdrawn")
    silent.close()


def test_no_first_byte_in_time_is_deadline_exceeded_and_cancelled(
    deployment: Deployment, executor_token: str, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway_with_agent(
        "gw-first-byte", executor_token, upstream.url, GEMPROXY_FIRST_BYTE_TIMEOUT="1"
    )
    upstream.fake.stream_aborted.clear()

    with pytest.raises(errors.ServerError) as raised:
        sdk_client(gateway, proxy_key).models.generate_content(model="gemini-2.5-flash", contents="late #slow=5")

    assert (raised.value.code, raised.value.status) == (504, "DEADLINE_EXCEEDED")
    upstream.wait_for("stream_aborted", timeout=5)


def test_a_stream_that_goes_quiet_ends_with_an_error_event_and_a_cancel(
    deployment: Deployment, executor_token: str, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway_with_agent("gw-idle", executor_token, upstream.url, GEMPROXY_IDLE_TIMEOUT="1")
    upstream.fake.stream_aborted.clear()

    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        response = http.post(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            json={"contents": [{"parts": [{"text": "goes quiet #hold"}]}]},
            headers={"x-goog-api-key": proxy_key},
        )

    first_event, late_error = response.content.split(b"\r\n\r\n", 1)
    assert first_event.startswith(b"data: ")
    assert json.loads(late_error)["error"]["status"] == "DEADLINE_EXCEEDED"
    upstream.wait_for("stream_aborted", timeout=5)
    upstream.release()


def test_a_call_over_the_total_time_limit_is_stopped(
    deployment: Deployment, executor_token: str, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway_with_agent("gw-total", executor_token, upstream.url, GEMPROXY_TOTAL_TIMEOUT="2")

    stream = iter(
        sdk_client(gateway, proxy_key).models.generate_content_stream(
            model="gemini-2.5-flash", contents="never ends #hold"
        )
    )
    assert next(stream).text
    with pytest.raises(errors.ServerError) as raised:
        list(stream)

    assert raised.value.code == 504
    assert "total time limit" in raised.value.message
    upstream.release()


def test_an_empty_stream_is_an_empty_answer_not_a_fault(deployment: Deployment, executor_token: str, proxy_key: str):
    gateway = deployment.start_gateway("gw-empty-stream")
    headers = {"content-type": "text/event-stream"}
    ScriptedExecutor(
        gateway,
        executor_token,
        lambda request: [
            {"type": "response_start", "status": 200, "headers": headers},
            {"type": "response_end", "chunks": 0},
        ],
    )
    gateway.wait_for_executors(1)

    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        response = http.post(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            json={"contents": [{"parts": [{"text": "nothing to say"}]}]},
            headers={"x-goog-api-key": proxy_key},
        )

    assert response.status_code == 200
    assert response.content == b""
