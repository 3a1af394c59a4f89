"""Executors come and go; the client gets an answer or a clear error, never a hang."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter

import httpx2 as httpx
import pytest
from google.genai import errors

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, ThreadedUpstream, wait_until


def executors_that_served(upstream: ThreadedUpstream, marker: str) -> list[str]:
    return [r.headers.get("x-goog-api-key", "") for r in upstream.requests if marker.encode() in r.body]


def test_two_executors_share_the_load(
    deployment: Deployment, executor_token: str, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway("gw-share")
    deployment.start_agent(gateway, executor_token, upstream.url, name="share-a", concurrency=4)
    deployment.start_agent(gateway, executor_token, upstream.url, name="share-b", concurrency=4)
    gateway.wait_for_executors(2)
    client = sdk_client(gateway, proxy_key)

    def stream(n: int) -> None:
        list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=f"shared load {n} #hold"))

    threads = [threading.Thread(target=stream, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(executors_that_served(upstream, "shared load")) == 6, what="6 streams upstream")
    served = Counter(executors_that_served(upstream, "shared load"))
    upstream.release()
    for thread in threads:
        thread.join(30)

    assert served == {"upstream-key-of-share-a": 3, "upstream-key-of-share-b": 3}


def test_an_executor_killed_mid_stream_gives_the_client_an_error(
    deployment: Deployment, executor_token: str, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway("gw-midstream")
    agent = deployment.start_agent(gateway, executor_token, upstream.url, name="dies-mid-stream")
    gateway.wait_for_executors(1)
    stream = iter(
        sdk_client(gateway, proxy_key).models.generate_content_stream(
            model="gemini-2.5-flash", contents="killed mid stream #hold"
        )
    )
    assert next(stream).text

    agent.kill()

    with pytest.raises(errors.ServerError) as raised:
        list(stream)
    assert raised.value.code == 503
    assert "disconnected" in raised.value.message
    upstream.release()


def test_an_executor_killed_before_the_first_byte_is_replaced_transparently(
    deployment: Deployment, executor_token: str, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway("gw-retry")
    agents = {
        name: deployment.start_agent(gateway, executor_token, upstream.url, name=name)
        for name in ("retry-a", "retry-b")
    }
    gateway.wait_for_executors(2)
    result: dict = {}

    def call() -> None:
        result["response"] = sdk_client(gateway, proxy_key).models.generate_content(
            model="gemini-2.5-flash", contents="first executor dies #slow=2"
        )

    thread = threading.Thread(target=call)
    thread.start()
    wait_until(lambda: executors_that_served(upstream, "first executor dies"), what="the first attempt upstream")
    first = executors_that_served(upstream, "first executor dies")[0].removeprefix("upstream-key-of-")
    agents[first].kill()
    thread.join(30)

    assert result["response"].text.startswith("echo: first executor dies")
    served = executors_that_served(upstream, "first executor dies")
    assert len(served) == 2
    assert served[1] != served[0]


def test_a_client_that_leaves_mid_stream_cancels_the_upstream_call(
    deployment: Deployment, executor_token: str, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway_with_agent("gw-cancel", executor_token, upstream.url)
    upstream.fake.stream_aborted.clear()

    with (
        httpx.Client(base_url=gateway.url, timeout=30) as http,
        http.stream(
            "POST",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            json={"contents": [{"parts": [{"text": "client leaves #hold"}]}]},
            headers={"x-goog-api-key": proxy_key},
        ) as response,
    ):
        assert next(response.iter_raw()).startswith(b"data: ")
    left_at = time.monotonic()

    upstream.wait_for("stream_aborted", timeout=5)
    assert time.monotonic() - left_at < 1.0
    wait_until(lambda: gateway.health()["busy"] == 0, timeout=5, what="the executor's slot to be free")
    upstream.release()


def test_without_executors_the_client_gets_unavailable(deployment: Deployment, proxy_key: str) -> None:
    gateway = deployment.start_gateway("gw-empty")

    with pytest.raises(errors.ServerError) as raised:
        sdk_client(gateway, proxy_key).models.generate_content(model="gemini-2.5-flash", contents="anyone there?")

    assert raised.value.code == 503
    assert raised.value.status == "UNAVAILABLE"


def test_an_upstream_429_is_retried_on_another_account_then_answered_with_retry_info(
    deployment: Deployment, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway("gw-429")
    for label in ("first@example.com", "second@example.com"):
        token = deployment.executor_token(label)
        deployment.start_agent(gateway, token, upstream.url, name=f"limited-{label.split('@')[0]}")
    gateway.wait_for_executors(2)

    with pytest.raises(errors.ClientError) as raised:
        sdk_client(gateway, proxy_key).models.generate_content(
            model="gemini-2.5-pro", contents="everyone is limited #error=429"
        )

    assert raised.value.code == 429
    assert len(set(executors_that_served(upstream, "everyone is limited"))) == 2
    # Both accounts now cool down for 7.2 s, as the fake's 429 said: the gateway says when to come back.
    assert raised.value.response.headers["retry-after"] in ("7", "8")


def test_an_executor_that_stops_answering_heartbeats_leaves(
    deployment: Deployment, executor_token: str, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway("gw-heartbeat")
    agent = deployment.start_agent(gateway, executor_token, upstream.url, name="frozen")
    gateway.wait_for_executors(1)

    agent.popen.send_signal(signal.SIGSTOP)
    try:
        # The e2e deployment sets a 6 s heartbeat timeout with pings every 2 s.
        gateway.wait_for_executors(0, timeout=15)
    finally:
        agent.popen.send_signal(signal.SIGCONT)
