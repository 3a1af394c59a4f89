"""A batch from creation to results with the official SDK, through real Daphne and real headless executors.

Each executor account is the fake upstream seen with that account's key, so a
call about a batch that reached another account would be the fake's 403.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from google.genai import errors, types

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, Gateway, Process, ThreadedUpstream

MODEL = "gemini-2.5-flash"


@pytest.fixture(scope="module")
def batch_upstream() -> Iterator[ThreadedUpstream]:
    fake = ThreadedUpstream(batch_delays=(0.5, 0.5))
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(deployment: Deployment) -> Gateway:
    return deployment.start_gateway()


@pytest.fixture(scope="module")
def agent_a(deployment: Deployment, gateway: Gateway, batch_upstream: ThreadedUpstream) -> Process:
    agent = deployment.start_agent(gateway, deployment.executor_token("ana@example.com"), batch_upstream.url, "agent-a")
    gateway.wait_for_executors(1)
    return agent


def requests(*texts: str) -> list[types.InlinedRequest]:
    return [
        types.InlinedRequest(
            contents=[types.Content(role="user", parts=[types.Part(text=text)])], metadata={"n": str(i)}
        )
        for i, text in enumerate(texts)
    ]


def until_done(client, name: str, timeout: float = 30.0) -> types.BatchJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.batches.get(name=name)
        if job.done:
            return job
        time.sleep(0.2)
    raise AssertionError(f"{name} did not finish in {timeout}s")


def test_a_batch_runs_from_creation_to_results(gateway: Gateway, agent_a: Process, proxy_key: str) -> None:
    client = sdk_client(gateway, proxy_key)

    job = client.batches.create(model=MODEL, src=requests("first", "second"), config={"display_name": "e2e"})
    assert job.name.startswith("batches/") and len(job.name) == len("batches/") + 12
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.display_name == "e2e"

    done = until_done(client, job.name)

    assert done.name == job.name
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    texts = [item.response.text for item in done.dest.inlined_responses]
    assert texts == ["echo: first", "echo: second"]
    assert [item.metadata for item in done.dest.inlined_responses] == [{"n": "0"}, {"n": "1"}]


def test_list_shows_the_members_batches_and_not_anothers(
    deployment: Deployment, gateway: Gateway, agent_a: Process, proxy_key: str
) -> None:
    client = sdk_client(gateway, proxy_key)
    mine = client.batches.create(model=MODEL, src=requests("listed"))
    other = sdk_client(gateway, deployment.proxy_key("bob"))
    theirs = other.batches.create(model=MODEL, src=requests("not yours"))

    listed = [job.name for job in client.batches.list(config={"page_size": 1})]

    assert mine.name in listed and theirs.name not in listed
    assert [job.name for job in other.batches.list()] == [theirs.name]
    with pytest.raises(errors.ClientError) as absent:
        other.batches.get(name=mine.name)
    assert absent.value.code == 404


def test_cancel_then_delete(
    gateway: Gateway, agent_a: Process, proxy_key: str, batch_upstream: ThreadedUpstream
) -> None:
    client = sdk_client(gateway, proxy_key)
    batch_upstream.fake.batches.delays = (60.0, 60.0)
    try:
        job = client.batches.create(model=MODEL, src=requests("never mind"))
    finally:
        batch_upstream.fake.batches.delays = (0.5, 0.5)

    client.batches.cancel(name=job.name)
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_CANCELLED
    client.batches.delete(name=job.name)

    with pytest.raises(errors.ClientError) as gone:
        client.batches.get(name=job.name)
    assert gone.value.code == 404
    assert job.name not in [listed.name for listed in client.batches.list()]


def test_while_the_pinned_accounts_executor_is_gone_calls_answer_503_and_work_again_when_it_is_back(
    deployment: Deployment, gateway: Gateway, agent_a: Process, proxy_key: str, batch_upstream: ThreadedUpstream
) -> None:
    client = sdk_client(gateway, proxy_key)
    job = client.batches.create(model=MODEL, src=requests("pinned"))
    token_b = deployment.executor_token("ben@example.com")
    deployment.start_agent(gateway, token_b, batch_upstream.url, "agent-b")
    gateway.wait_for_executors(2)

    agent_a.kill()
    gateway.wait_for_executors(1)
    with pytest.raises(errors.ServerError) as unavailable:
        client.batches.get(name=job.name)
    assert (unavailable.value.code, unavailable.value.status) == (503, "UNAVAILABLE")
    assert job.name in unavailable.value.message and "ana@example.com" not in unavailable.value.message

    # The same account back (a new executor with its key): the batch is reachable again.
    deployment.start_agent(gateway, deployment.executor_token("ana@example.com"), batch_upstream.url, "agent-a")
    gateway.wait_for_executors(2)
    assert until_done(client, job.name).state == types.JobState.JOB_STATE_SUCCEEDED
