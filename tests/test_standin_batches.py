"""The fake upstream's Batch API behaves as Google's: proven with the official SDK and raw HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from google import genai
from google.genai import errors, types

from tests.fake_upstream import FakeUpstream

MODEL = "gemini-2.5-flash"
BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(batch_delays=(0.2, 0.2)) as upstream:
        yield upstream


def sdk_of(fake: FakeUpstream, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options={"base_url": fake.url, "api_version": "v1beta"})


@pytest.fixture
def sdk(fake: FakeUpstream) -> genai.Client:
    return sdk_of(fake, "account-a")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def inline(*texts: str) -> list[dict]:
    return [
        {"contents": [{"parts": [{"text": text}], "role": "user"}], "metadata": {"n": str(i)}}
        for i, text in enumerate(texts)
    ]


async def until_done(client: genai.Client, name: str) -> types.BatchJob:
    for _ in range(100):
        job = await client.aio.batches.get(name=name)
        if job.done:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never finished")


async def test_create_answers_a_pending_operation_with_googles_metadata(fake, http):
    body = {
        "batch": {
            "displayName": "nightly",
            "inputConfig": {"requests": {"requests": [{"request": {"contents": [{"parts": [{"text": "hi"}]}]}}]}},
        }
    }
    async with http.post(
        f"{fake.url}/v1beta/models/{MODEL}:batchGenerateContent", json=body, headers={"x-goog-api-key": "a"}
    ) as answer:
        assert answer.status == 200
        operation = await answer.json()

    assert operation["name"].startswith("batches/")
    assert "done" not in operation
    metadata = operation["metadata"]
    assert metadata["@type"] == BATCH_TYPE
    assert metadata["state"] == "BATCH_STATE_PENDING"
    assert metadata["model"] == f"models/{MODEL}"
    assert metadata["displayName"] == "nightly"
    assert metadata["name"] == operation["name"]
    assert metadata["batchStats"] == {"requestCount": "1", "pendingRequestCount": "1"}
    assert metadata["createTime"].endswith("Z")


async def test_sdk_batch_moves_from_pending_through_running_to_succeeded_with_inlined_results(sdk):
    job = await sdk.aio.batches.create(
        model=MODEL, src=inline("first", "second #error=500"), config={"display_name": "two"}
    )
    assert job.state == types.JobState.JOB_STATE_PENDING
    await asyncio.sleep(0.25)
    assert (await sdk.aio.batches.get(name=job.name)).state == types.JobState.JOB_STATE_RUNNING

    done = await until_done(sdk, job.name)

    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    first, second = done.dest.inlined_responses
    assert first.response.text == "echo: first"
    assert first.metadata == {"n": "0"}
    assert second.response is None
    assert second.error.code == 13
    assert second.metadata == {"n": "1"}


async def test_done_batch_carries_the_output_as_its_response_too(fake, sdk, http):
    job = await sdk.aio.batches.create(model=MODEL, src=inline("x"))
    await until_done(sdk, job.name)

    async with http.get(f"{fake.url}/v1beta/{job.name}", headers={"x-goog-api-key": "account-a"}) as answer:
        operation = await answer.json()

    assert operation["done"] is True
    assert operation["response"]["@type"].endswith("GenerateContentBatchOutput")
    assert operation["response"]["inlinedResponses"] == operation["metadata"]["output"]["inlinedResponses"]
    assert operation["metadata"]["batchStats"] == {"requestCount": "1", "successfulRequestCount": "1"}
    assert operation["metadata"]["endTime"]


async def test_cancel_makes_a_running_batch_cancelled_and_a_done_one_is_refused(fake, sdk):
    fake.batches.delays = (30, 30)
    job = await sdk.aio.batches.create(model=MODEL, src=inline("x"))

    await sdk.aio.batches.cancel(name=job.name)

    assert (await sdk.aio.batches.get(name=job.name)).state == types.JobState.JOB_STATE_CANCELLED
    with pytest.raises(errors.ClientError) as refused:
        await sdk.aio.batches.cancel(name=job.name)
    assert refused.value.code == 400


async def test_delete_forgets_the_batch(sdk):
    job = await sdk.aio.batches.create(model=MODEL, src=inline("x"))

    await sdk.aio.batches.delete(name=job.name)

    with pytest.raises(errors.ClientError) as missing:
        await sdk.aio.batches.get(name=job.name)
    assert missing.value.code == 404


async def test_another_accounts_batch_is_permission_denied_and_an_unknown_one_not_found(fake, sdk):
    job = await sdk.aio.batches.create(model=MODEL, src=inline("x"))
    other = sdk_of(fake, "account-b")

    for call in (other.aio.batches.get, other.aio.batches.cancel, other.aio.batches.delete):
        with pytest.raises(errors.ClientError) as denied:
            await call(name=job.name)
        assert (denied.value.code, denied.value.status) == (403, "PERMISSION_DENIED")
    with pytest.raises(errors.ClientError) as missing:
        await sdk.aio.batches.get(name="batches/doesnotexist")
    assert (missing.value.code, missing.value.status) == (404, "NOT_FOUND")


async def test_list_pages_through_the_callers_batches_only(fake, sdk):
    names = [(await sdk.aio.batches.create(model=MODEL, src=inline(f"n{i}"))).name for i in range(3)]
    await sdk_of(fake, "account-b").aio.batches.create(model=MODEL, src=inline("theirs"))

    pager = await sdk.aio.batches.list(config={"page_size": 2})
    listed = [job.name async for job in pager]

    assert sorted(listed) == sorted(names)
    assert fake.requests[-1].query.startswith("pageSize=2&pageToken=")


async def test_file_input_gives_a_jsonl_responses_file_downloadable_by_its_account_only(fake, sdk, http):
    lines = [
        {"key": "k1", "request": {"contents": [{"parts": [{"text": "one"}]}]}},
        {"key": "k2", "request": {"contents": [{"parts": [{"text": "two"}]}]}},
    ]
    fake.batches.input_file = lambda account, name: (
        b"\n".join(json.dumps(line).encode() for line in lines)
        if (account, name) == ("account-a", "files/input1")
        else None
    )
    job = await sdk.aio.batches.create(model=MODEL, src="files/input1")

    done = await until_done(sdk, job.name)

    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    responses_file = done.dest.file_name
    url = f"{fake.url}/download/v1beta/{responses_file}:download?alt=media"
    async with http.get(url, headers={"x-goog-api-key": "account-a"}) as answer:
        assert answer.status == 200
        results = [json.loads(line) for line in (await answer.read()).splitlines()]
    assert [line["key"] for line in results] == ["k1", "k2"]
    assert results[1]["response"]["candidates"][0]["content"]["parts"][0]["text"] == "echo: two"
    assert await sdk.aio.files.download(file=responses_file) == (
        await (await http.get(url, headers={"x-goog-api-key": "account-a"})).read()
    )
    async with http.get(url, headers={"x-goog-api-key": "account-b"}) as denied:
        assert denied.status == 403


async def test_an_input_file_it_cannot_read_ends_the_batch_failed(sdk):
    job = await sdk.aio.batches.create(model=MODEL, src="files/unknown")

    done = await until_done(sdk, job.name)

    assert done.state == types.JobState.JOB_STATE_FAILED


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"batch": "nope"},
        {"batch": {"inputConfig": {}}},
        {"batch": {"inputConfig": {"requests": {"requests": []}}}},
        {"batch": {"inputConfig": {"requests": {"requests": [{"request": 5}]}}}},
        {"batch": {"inputConfig": {"fileName": "files/x", "requests": {"requests": [{"request": {}}]}}}},
        {"batch": {"inputConfig": {"fileName": 7}}},
    ],
    ids=["empty", "not-an-object", "no-source", "no-requests", "bad-request", "two-sources", "bad-file-name"],
)
async def test_malformed_create_bodies_are_invalid_argument(fake, http, body):
    async with http.post(f"{fake.url}/v1beta/models/{MODEL}:batchGenerateContent", json=body) as answer:
        assert answer.status == 400
        assert (await answer.json())["error"]["status"] == "INVALID_ARGUMENT"


async def test_a_model_without_batch_generation_is_not_found_for_it(sdk):
    with pytest.raises(errors.ClientError) as missing:
        await sdk.aio.batches.create(model="text-embedding-004", src=inline("x"))

    assert (missing.value.code, missing.value.status) == (404, "NOT_FOUND")
