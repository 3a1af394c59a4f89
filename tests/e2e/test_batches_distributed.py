"""Batches in a distributed install (Redis registry, PostgreSQL): any gateway process serves calls about any batch."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from google.genai import errors, types

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream

MODEL = "gemini-2.5-flash"


@pytest.fixture(scope="module")
def batch_upstream() -> Iterator[ThreadedUpstream]:
    fake = ThreadedUpstream(batch_delays=(0.3, 0.3))
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def two_gateways(distributed: Deployment, batch_upstream: ThreadedUpstream) -> tuple[Gateway, Gateway, str]:
    gateway_a = distributed.start_gateway("gateway-a")
    gateway_b = distributed.start_gateway("gateway-b")
    token = distributed.executor_token("ana@example.com")
    distributed.start_agent(gateway_a, token, batch_upstream.url, name="agent-on-a")
    gateway_b.wait_for_executors(1)
    return gateway_a, gateway_b, distributed.proxy_key("carol")


def test_a_batch_created_through_one_process_is_followed_listed_and_deleted_through_another(two_gateways) -> None:
    gateway_a, gateway_b, key = two_gateways
    job = sdk_client(gateway_a, key).batches.create(model=MODEL, src=[{"contents": [{"parts": [{"text": "across"}]}]}])
    other_process = sdk_client(gateway_b, key)

    deadline = time.monotonic() + 30
    while not (done := other_process.batches.get(name=job.name)).done and time.monotonic() < deadline:
        time.sleep(0.2)

    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest.inlined_responses[0].response.text == "echo: across"
    assert [listed.name for listed in sdk_client(gateway_a, key).batches.list()] == [job.name]
    other_process.batches.delete(name=job.name)
    with pytest.raises(errors.ClientError):
        sdk_client(gateway_a, key).batches.get(name=job.name)


def test_every_process_answers_503_while_the_pinned_account_has_no_executor(
    distributed: Deployment, two_gateways, batch_upstream: ThreadedUpstream
) -> None:
    gateway_a, gateway_b, key = two_gateways
    job = sdk_client(gateway_a, key).batches.create(model=MODEL, src=[{"contents": [{"parts": [{"text": "x"}]}]}])
    agent = next(process for process in distributed.processes if process.name == "agent-on-a")

    agent.kill()
    gateway_b.wait_for_executors(0)

    for gateway in (gateway_a, gateway_b):
        with pytest.raises(errors.ServerError) as unavailable:
            sdk_client(gateway, key).batches.get(name=job.name)
        assert (unavailable.value.code, unavailable.value.status) == (503, "UNAVAILABLE")
        assert job.name in unavailable.value.message and "ana@example.com" not in unavailable.value.message
