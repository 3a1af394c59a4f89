"""Several Daphne processes share executors through Redis: any process serves any call."""

from __future__ import annotations

import pytest
from google.genai import errors

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, wait_until


@pytest.fixture(scope="module")
def two_gateways(distributed: Deployment, upstream: ThreadedUpstream) -> tuple[Gateway, Gateway, str]:
    token = distributed.executor_token("shared@example.com")
    key = distributed.proxy_key("carol")
    gateway_a = distributed.start_gateway("gateway-a")
    gateway_b = distributed.start_gateway("gateway-b")
    distributed.start_agent(gateway_a, token, upstream.url, name="connected-to-a")
    gateway_a.wait_for_executors(1)
    return gateway_a, gateway_b, key


def test_both_processes_see_the_executor_connected_to_one(two_gateways) -> None:
    gateway_a, gateway_b, _ = two_gateways

    assert gateway_a.health()["executors"] == 1
    assert gateway_b.health()["executors"] == 1


def test_a_call_to_process_b_is_served_by_the_executor_on_process_a(two_gateways) -> None:
    _, gateway_b, key = two_gateways

    response = sdk_client(gateway_b, key).models.generate_content(model="gemini-2.5-flash", contents="across")

    assert response.text.startswith("echo: across")


def test_a_stream_through_process_b_is_incremental(two_gateways, upstream: ThreadedUpstream) -> None:
    _, gateway_b, key = two_gateways
    stream = iter(
        sdk_client(gateway_b, key).models.generate_content_stream(
            model="gemini-2.5-flash", contents="cross-process stream #hold #chunks=3"
        )
    )

    assert next(stream).text
    upstream.release()
    assert len(list(stream)) == 2


def test_many_calls_across_processes_all_succeed(two_gateways) -> None:
    gateway_a, gateway_b, key = two_gateways

    texts = [
        sdk_client(gateway, key).models.generate_content(model="gemini-2.5-flash", contents=f"call {n}").text
        for n, gateway in enumerate([gateway_a, gateway_b] * 5)
    ]

    assert [text.split()[2] for text in texts] == [str(n) for n in range(10)]


def test_a_limit_holds_exactly_across_processes(distributed: Deployment, two_gateways) -> None:
    gateway_a, gateway_b, _ = two_gateways
    # A daily limit, so the calls cannot straddle a window's edge.
    key = distributed.manage("create_proxy_key", "--user", "dave", "--rpd", "3")

    statuses = [sdk_status(gateway, key, f"limited call {n}") for n, gateway in enumerate([gateway_a, gateway_b] * 4)]

    assert sorted(statuses) == [200] * 3 + [429] * 5


def sdk_status(gateway: Gateway, key: str, text: str) -> int:
    try:
        sdk_client(gateway, key).models.generate_content(model="gemini-2.5-flash", contents=text)
    except errors.APIError as error:
        return error.code
    return 200


def test_a_gateway_process_that_dies_mid_call_does_not_keep_the_executors_slot(
    distributed: Deployment, two_gateways, upstream: ThreadedUpstream
) -> None:
    gateway_a, _, key = two_gateways
    doomed = distributed.start_gateway("gateway-c")
    client = sdk_client(doomed, key)
    stream = iter(client.models.generate_content_stream(model="gemini-2.5-flash", contents="orphaned call #hold"))
    assert next(stream).text
    assert gateway_a.health()["busy"] == 1

    doomed.process.kill()  # no chance to release the slot it took
    upstream.release()  # the executor finishes the call for nobody

    # The consumer's heartbeat (every 2 s here) sets the count to what it holds.
    wait_until(lambda: gateway_a.health()["busy"] == 0, timeout=10, what="the orphaned slot to be freed")
