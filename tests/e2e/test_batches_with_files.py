"""Batches that use the member's files, with the official SDK through Daphne and a headless executor.

Needs the files work merged: the upload ending at the gateway, ``resources.replication``
copying the input file to the batch's account, the files download view relaying a
generated file (``resources.generated.relay_download``), and the fake upstream
reading its uploaded files as batch input (``GeminiStandIn.batches.input_file``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.genai import errors, types

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream

MODEL = "gemini-2.5-flash"


@pytest.fixture(scope="module")
def batch_upstream() -> Iterator[ThreadedUpstream]:
    fake = ThreadedUpstream(batch_delays=(0.5, 0.5))
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(deployment: Deployment, batch_upstream: ThreadedUpstream) -> Gateway:
    gateway = deployment.start_gateway()
    deployment.start_agent(gateway, deployment.executor_token("ana@example.com"), batch_upstream.url, "agent-a")
    gateway.wait_for_executors(1)
    return gateway


def until_done(client, name: str, timeout: float = 30.0) -> types.BatchJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.batches.get(name=name)
        if job.done:
            return job
        time.sleep(0.2)
    raise AssertionError(f"{name} did not finish in {timeout}s")


def test_a_batch_from_an_uploaded_file_gives_a_responses_file_the_member_can_download(
    deployment: Deployment, gateway: Gateway, proxy_key: str, tmp_path: Path
) -> None:
    client = sdk_client(gateway, proxy_key)
    lines = [
        {"key": f"line-{i}", "request": {"contents": [{"role": "user", "parts": [{"text": f"question {i}"}]}]}}
        for i in range(3)
    ]
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    uploaded = client.files.upload(file=path, config={"mime_type": "jsonl", "display_name": "requests"})

    job = client.batches.create(model=MODEL, src=uploaded.name, config={"display_name": "from a file"})
    done = until_done(client, job.name)

    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    responses = done.dest.file_name
    assert responses and responses.startswith("files/") and responses != uploaded.name
    results = [json.loads(line) for line in client.files.download(file=responses).splitlines()]
    assert [result["key"] for result in results] == ["line-0", "line-1", "line-2"]
    assert results[2]["response"]["candidates"][0]["content"]["parts"][0]["text"] == "echo: question 2"

    stranger = sdk_client(gateway, deployment.proxy_key("mallory"))
    with pytest.raises(errors.ClientError) as refused:
        stranger.files.download(file=responses)
    assert refused.value.code in (403, 404)
    with pytest.raises(errors.ClientError):
        stranger.batches.create(model=MODEL, src=uploaded.name)
