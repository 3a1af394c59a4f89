"""The fake upstream speaks Google's formats: proven with the official google-genai SDK."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from google import genai
from google.genai import errors, types

from tests.fake_upstream import FakeUpstream

MODEL = "gemini-2.5-flash"
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def sdk(fake: FakeUpstream) -> genai.Client:
    """The SDK with its default API version (v1)."""
    return genai.Client(api_key="sdk-key", http_options={"base_url": fake.url})


@pytest.fixture
def beta_sdk(fake: FakeUpstream) -> genai.Client:
    return genai.Client(api_key="sdk-key", http_options={"base_url": fake.url, "api_version": "v1beta"})


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_generate_content_answers_the_sdk_with_text_usage_and_model_version(sdk, fake):
    response = await sdk.aio.models.generate_content(model=MODEL, contents="hello there")

    assert response.text == "echo: hello there"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert usage.prompt_tokens_details[0].modality == types.MediaModality.TEXT
    assert response.model_version == MODEL
    assert response.response_id
    assert fake.requests[-1].path == f"/v1/models/{MODEL}:generateContent"
    assert fake.requests[-1].api_key == "sdk-key"


async def test_v1beta_is_served_like_v1(beta_sdk, fake):
    response = await beta_sdk.aio.models.generate_content(model=MODEL, contents="beta")

    assert response.text == "echo: beta"
    assert fake.requests[-1].path == f"/v1beta/models/{MODEL}:generateContent"


async def test_sse_stream_reaches_the_sdk_chunk_by_chunk_while_the_fake_holds(beta_sdk, fake):
    stream = await beta_sdk.aio.models.generate_content_stream(model=MODEL, contents="one two three #hold")

    first = await asyncio.wait_for(anext(stream), timeout=5)
    assert fake.stream_held.is_set(), "the first chunk arrived before the fake reached #hold"
    fake.release()
    rest = [chunk async for chunk in stream]

    assert "".join(c.text for c in [first, *rest]) == "echo: one two three #hold"
    assert len(rest) == 2
    assert first.candidates[0].finish_reason is None
    assert rest[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert fake.requests[-1].query == "alt=sse"


async def test_sse_events_are_compact_json_lines_ending_in_crlf_crlf(fake, http):
    body = {"contents": [{"role": "user", "parts": [{"text": "frame me #chunks=4"}]}]}
    url = f"{fake.url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    async with http.post(url, json=body) as response:
        raw = await response.read()
        assert response.headers["Content-Type"].startswith("text/event-stream")

    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b"", "every event, the last included, ends with a blank line"
    chunks = [json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert all(e.startswith(b"data: {") and b"\n" not in e for e in events[:-1])
    assert len(chunks) == 4
    usage = [c["usageMetadata"]["candidatesTokenCount"] for c in chunks]
    assert usage == sorted(usage), "usage is cumulative"
    assert [("finishReason" in c["candidates"][0]) for c in chunks] == [False, False, False, True]


async def test_stream_without_alt_is_one_json_array_written_element_by_element(fake, http):
    body = {"contents": [{"role": "user", "parts": [{"text": "array please #hold"}]}]}
    url = f"{fake.url}/v1beta/models/{MODEL}:streamGenerateContent"
    async with http.post(url, json=body) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        head = await asyncio.wait_for(response.content.readuntil(b"\n}"), timeout=5)
        assert head.startswith(b"[{")
        fake.release()
        raw = head + await response.read()

    elements = json.loads(raw)
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in elements) == "echo: array please #hold"


async def test_count_tokens_accepts_contents_and_generate_content_request(sdk, fake, http):
    counted = await sdk.aio.models.count_tokens(model=MODEL, contents="count these words")
    wrapped = {"generateContentRequest": {"model": f"models/{MODEL}", "contents": fake.requests[-1].json["contents"]}}
    async with http.post(f"{fake.url}/v1/models/{MODEL}:countTokens", json=wrapped) as response:
        answer = await response.json()

    assert counted.total_tokens > 0
    assert answer["totalTokens"] == counted.total_tokens
    assert answer["promptTokensDetails"][0]["modality"] == "TEXT"


async def test_embed_uses_batch_embed_contents_and_honours_output_dimensionality(sdk, fake):
    result = await sdk.aio.models.embed_content(
        model="gemini-embedding-001", contents=["first", "second"], config={"output_dimensionality": 8}
    )

    assert [len(e.values) for e in result.embeddings] == [8, 8]
    assert result.embeddings[0].values != result.embeddings[1].values
    assert fake.requests[-1].path.endswith("/gemini-embedding-001:batchEmbedContents")


async def test_models_list_pages_through_every_model_and_get_finds_one(sdk, fake):
    names = [model.name async for model in await sdk.aio.models.list(config={"page_size": 2})]
    pro = await sdk.aio.models.get(model="gemini-2.5-pro")

    assert {"models/gemini-2.5-flash", "models/gemini-2.5-pro", "models/text-embedding-004"} <= set(names)
    assert len([r for r in fake.requests if r.path == "/v1/models"]) > 1, "the SDK followed nextPageToken"
    assert pro.name == "models/gemini-2.5-pro"
    assert pro.input_token_limit and pro.output_token_limit and pro.thinking


async def test_unknown_model_is_a_google_not_found(sdk):
    with pytest.raises(errors.ClientError) as raised:
        await sdk.aio.models.generate_content(model="gemini-0-nope", contents="hi")

    assert raised.value.code == 404
    assert raised.value.status == "NOT_FOUND"


async def test_error_429_directive_raises_client_error_with_retry_info(sdk):
    with pytest.raises(errors.ClientError) as raised:
        await sdk.aio.models.generate_content(model=MODEL, contents="too much #error=429")

    assert raised.value.code == 429
    assert raised.value.status == "RESOURCE_EXHAUSTED"
    detail_types = [d["@type"] for d in raised.value.details["error"]["details"]]
    assert "type.googleapis.com/google.rpc.RetryInfo" in detail_types


async def test_error_429_directive_answers_the_free_tiers_words_with_the_delay_asked(sdk):
    with pytest.raises(errors.ClientError) as raised:
        await sdk.aio.models.generate_content(model=MODEL, contents="too much #error=429 #retry-delay=1.5")

    error = raised.value.details["error"]
    assert error["message"].startswith("You exceeded your current quota, please check your plan and billing details.")
    assert error["message"].endswith("\nPlease retry in 1.5s.")
    assert error["details"][-1] == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}


@pytest.fixture
async def free_tier() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(quotas={"limited-key": 2}, quota_window=0.6) as upstream:
        yield upstream


def client_of(fake: FakeUpstream, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options={"base_url": fake.url})


async def test_a_keys_free_tier_quota_refuses_the_call_beyond_it_as_google_does(free_tier):
    limited = client_of(free_tier, "limited-key")
    for n in range(2):
        await limited.aio.models.generate_content(model=MODEL, contents=f"call {n}")

    with pytest.raises(errors.ClientError) as raised:
        [chunk async for chunk in await limited.aio.models.generate_content_stream(model=MODEL, contents="over")]

    error = raised.value.details["error"]
    assert (raised.value.code, error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert re.search(r"limit: 2, model: gemini-2\.5-flash\nPlease retry in 0\.[0-9]{1,9}s\.$", error["message"])
    help_, quota_failure, retry_info = error["details"]
    assert help_["@type"] == "type.googleapis.com/google.rpc.Help"
    assert help_["links"][0]["url"] == "https://ai.google.dev/gemini-api/docs/rate-limits"
    assert quota_failure == {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": MODEL},
                "quotaValue": "2",
            }
        ],
    }
    assert retry_info == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0s"}


async def test_the_free_tier_quota_is_per_key_and_per_model_and_comes_back_after_its_window(free_tier):
    limited = client_of(free_tier, "limited-key")
    for n in range(2):
        await limited.aio.models.generate_content(model=MODEL, contents=f"call {n}")
    with pytest.raises(errors.ClientError):
        await limited.aio.models.generate_content(model=MODEL, contents="refused")

    await limited.aio.models.generate_content(model="gemini-2.5-pro", contents="another model")
    await client_of(free_tier, "other-key").aio.models.generate_content(model=MODEL, contents="another key")
    await asyncio.sleep(0.7)
    assert (await limited.aio.models.generate_content(model=MODEL, contents="a new window")).text


async def test_error_503_directive_raises_server_error(sdk):
    with pytest.raises(errors.ServerError) as raised:
        await sdk.aio.models.generate_content(model=MODEL, contents="busy #error=503")

    assert raised.value.code == 503
    assert raised.value.status == "UNAVAILABLE"


async def test_midstream_error_is_raised_by_the_sdk_after_the_first_chunk(beta_sdk):
    received = []
    with pytest.raises(errors.ServerError) as raised:
        async for chunk in await beta_sdk.aio.models.generate_content_stream(
            model=MODEL, contents="fail later #midstream-error"
        ):
            received.append(chunk.text)

    assert len(received) == 1
    assert raised.value.code == 500


async def test_malformed_json_is_400_invalid_argument(fake, http):
    async with http.post(f"{fake.url}/v1beta/models/{MODEL}:generateContent", data=b"{not json") as response:
        assert response.status == 400
        assert (await response.json())["error"]["status"] == "INVALID_ARGUMENT"


async def test_five_mib_inline_image_round_trips_intact(sdk):
    image = os.urandom(5 * 1024 * 1024)
    response = await sdk.aio.models.generate_content(
        model=MODEL, contents=[types.Part.from_bytes(data=image, mime_type="image/png"), "describe"]
    )

    assert f"[inline image/png {len(image)} bytes sha256={hashlib.sha256(image).hexdigest()}]" in response.text


async def test_snake_case_fields_and_unpadded_standard_base64_are_accepted(fake, http):
    data = b"\xfb\xff\xfe-not-padded"
    encoded = base64.b64encode(data).decode().rstrip("=")
    body = {"contents": [{"parts": [{"inline_data": {"mime_type": "image/jpeg", "data": encoded}}, {"text": "snake"}]}]}
    async with http.post(f"{fake.url}/v1beta/models/{MODEL}:generateContent", json=body) as response:
        text = (await response.json())["candidates"][0]["content"]["parts"][0]["text"]

    assert f"[inline image/jpeg {len(data)} bytes sha256={hashlib.sha256(data).hexdigest()}]" in text


async def test_thought_signature_comes_back_on_a_response_part(sdk):
    signature = b"\x00opaque-signature\xff"
    turn = types.Content(role="user", parts=[types.Part(text="keep this", thought_signature=signature)])
    response = await sdk.aio.models.generate_content(model=MODEL, contents=[turn])

    assert signature in [p.thought_signature for p in response.candidates[0].content.parts]


async def test_think_directive_adds_a_thought_part_and_thoughts_token_count(sdk):
    response = await sdk.aio.models.generate_content(model=MODEL, contents="ponder #think")

    parts = response.candidates[0].content.parts
    assert parts[0].thought is True
    assert response.text == "echo: ponder #think"
    assert response.usage_metadata.thoughts_token_count > 0


async def test_answers_carry_an_unknown_top_level_field(fake, http):
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    async with http.post(f"{fake.url}/v1/models/{MODEL}:generateContent", json=body) as response:
        assert "fakeUnknownField" in await response.json()


async def test_cors_preflight_and_answers_allow_the_browser_origin(fake, http):
    origin = "https://aistudio.example"
    preflight_headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-goog-api-key,x-goog-api-client",
    }
    url = f"{fake.url}/v1beta/models/{MODEL}:generateContent"
    async with http.options(url, headers=preflight_headers) as preflight:
        assert preflight.status == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == origin
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        assert "x-goog-api-key" in preflight.headers["Access-Control-Allow-Headers"]
        assert int(preflight.headers["Access-Control-Max-Age"]) > 0
    async with http.post(url, json={"contents": [{"parts": [{"text": "x"}]}]}, headers={"Origin": origin}) as answer:
        assert answer.headers["Access-Control-Allow-Origin"] == origin
        assert "X-Goog-Upload-URL" in answer.headers["Access-Control-Expose-Headers"]


async def test_a_caller_hanging_up_mid_stream_is_recorded_as_aborted(fake, http):
    body = {"contents": [{"parts": [{"text": "abandon me #hold"}]}]}
    response = await http.post(f"{fake.url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", json=body)
    await asyncio.wait_for(response.content.readuntil(b"\r\n\r\n"), timeout=5)
    response.close()

    await asyncio.wait_for(fake.stream_aborted.wait(), timeout=1)
    assert fake.aborted_streams == 1
    assert fake.requests[-1].aborted


async def test_valid_keys_make_the_fake_check_keys_as_google_does(http):
    async with FakeUpstream(valid_keys={"good"}) as fake:
        async with http.get(f"{fake.url}/v1beta/models") as missing:
            assert missing.status == 403
        async with http.get(f"{fake.url}/v1beta/models", headers={"x-goog-api-key": "bad"}) as wrong:
            assert wrong.status == 400
            assert (await wrong.json())["error"]["details"][0]["reason"] == "API_KEY_INVALID"
        async with http.get(f"{fake.url}/v1beta/models?key=good") as right:
            assert right.status == 200


async def test_standalone_mode_prints_its_url_and_serves(http):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "executors.standin", "--port", "0", cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        url = (await asyncio.wait_for(process.stdout.readline(), timeout=10)).decode().strip()
        async with http.get(f"{url}/v1beta/models/{MODEL}") as response:
            assert (await response.json())["name"] == f"models/{MODEL}"
        async with http.post(f"{url}/_fake/release") as released:
            assert released.status == 200
    finally:
        process.terminate()
        await process.wait()
