"""A gateway process that dies (SIGKILL) does not hang the calls of the other processes.

Issue 11, fault 2: a stream entering process B and served by an executor
connected to process A hung for the idle timeout (121 s) when A was killed,
and calls to B waited 5 s on A's executors afterwards. Now every process with
executors keeps a liveness key in Redis (10 s TTL by default, the setting the
tests keep), and B gives up on A's executors when it expires.
"""

from __future__ import annotations

import threading
import time

import pytest
from google.genai import errors

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, wait_until

# Issue 11's goal for a call whose executor's connection died with its process.
ENDS_WITHIN_SECONDS = 20.0


def served_by(upstream: ThreadedUpstream, marker: str) -> list[str]:
    return [r.headers.get("x-goog-api-key", "") for r in upstream.requests if marker.encode() in r.body]


@pytest.fixture(scope="module")
def entry(distributed: Deployment) -> tuple[Gateway, str, str]:
    """Process B, where the clients' calls enter; it has no executor of its own at first."""
    return distributed.start_gateway("entry"), distributed.proxy_key("erin"), distributed.executor_token("held@x.org")


def test_a_stream_served_through_a_killed_process_ends_within_20_s_in_googles_shape(
    distributed: Deployment, entry, upstream: ThreadedUpstream
) -> None:
    gateway_b, key, token = entry
    holder = distributed.start_gateway_with_agent("holder-1", token, upstream.url)
    gateway_b.wait_for_executors(1)
    stream = iter(
        sdk_client(gateway_b, key).models.generate_content_stream(
            model="gemini-2.5-flash", contents="stream across a death #hold"
        )
    )
    assert next(stream).text

    holder.process.kill()
    killed = time.monotonic()
    with pytest.raises(errors.ServerError) as raised:
        list(stream)
    took = time.monotonic() - killed

    assert took < ENDS_WITHIN_SECONDS, f"the stream ended {took:.1f}s after the kill"
    assert raised.value.code == 503 and raised.value.status == "UNAVAILABLE"
    assert "stopped" in raised.value.message
    upstream.release()
    wait_until(lambda: gateway_b.health()["executors"] == 0, 20, "the dead process's executor to be left out")


def test_a_call_waiting_for_its_first_byte_on_a_killed_process_is_retried_elsewhere(
    distributed: Deployment, entry, upstream: ThreadedUpstream
) -> None:
    gateway_b, key, token = entry
    holder = distributed.start_gateway_with_agent("holder-2", token, upstream.url)
    gateway_b.wait_for_executors(1)
    result: dict = {}

    def call() -> None:
        try:
            result["response"] = sdk_client(gateway_b, key).models.generate_content(
                model="gemini-2.5-flash", contents="first byte after a death #slow=3"
            )
        except errors.APIError as error:
            result["error"] = error

    thread = threading.Thread(target=call)
    thread.start()
    wait_until(lambda: served_by(upstream, "first byte after a death"), 10, "the first attempt upstream")
    assert served_by(upstream, "first byte after a death") == ["upstream-key-of-holder-2-agent"]
    # A survivor on B itself, which the call can only reach by a retry.
    distributed.start_agent(gateway_b, token, upstream.url, name="survivor")
    wait_until(lambda: gateway_b.health()["executors"] == 2, 20, "the survivor to register")
    holder.process.kill()
    killed = time.monotonic()
    thread.join(ENDS_WITHIN_SECONDS + 10)
    took = time.monotonic() - killed

    assert "error" not in result, result
    assert result["response"].text.startswith("echo: first byte after a death")
    assert served_by(upstream, "first byte after a death") == [
        "upstream-key-of-holder-2-agent",
        "upstream-key-of-survivor",
    ]
    assert took < ENDS_WITHIN_SECONDS, f"the retried call took {took:.1f}s after the kill"


def test_once_a_process_is_dead_no_call_waits_on_its_executors(
    distributed: Deployment, entry, upstream: ThreadedUpstream
) -> None:
    gateway_b, key, token = entry
    # The survivor of the previous test may be there; make sure one executor on B serves.
    if gateway_b.health()["executors"] == 0:
        distributed.start_agent(gateway_b, token, upstream.url, name="survivor-3")
        gateway_b.wait_for_executors(1)
    before = gateway_b.health()["executors"]
    holder = distributed.start_gateway_with_agent("holder-3", token, upstream.url)
    holder.wait_for_executors(before + 1)
    gateway_b.wait_for_executors(before + 1)

    holder.process.kill()
    killed = time.monotonic()
    wait_until(lambda: gateway_b.health()["executors"] == before, ENDS_WITHIN_SECONDS, "the dead executor to go")
    assert time.monotonic() - killed < ENDS_WITHIN_SECONDS

    client = sdk_client(gateway_b, key)
    for n in range(8):
        started = time.monotonic()
        assert client.models.generate_content(model="gemini-2.5-flash", contents=f"after death {n}").text
        took = time.monotonic() - started
        assert took < 2.0, f"call {n} took {took:.1f}s: it waited on a dead executor"
    assert not any("holder-3" in server for server in served_by(upstream, "after death"))
