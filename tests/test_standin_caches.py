"""The fake upstream's cachedContents behave as Google's: per account, sized, expiring, used by generateContent.

Proven with the official SDK where it can call (its ``caches`` surface and
``generate_content(config={"cached_content": ...})``), and with raw HTTP for
what the SDK would not send.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from google import genai
from google.genai import errors

from executors.standin.caches import cache_token_count, minimum_tokens
from tests.fake_upstream import FakeUpstream

MODEL = "gemini-2.5-flash"
# 4,400 characters: 1,100 tokens, above flash's minimum of 1,024 and below pro's 4,096.
BIG_TEXT = "A cached paragraph. " * 220


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as upstream:
        yield upstream


def _sdk(fake: FakeUpstream, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options={"base_url": fake.url, "api_version": "v1beta"})


@pytest.fixture
def account_a(fake: FakeUpstream) -> genai.Client:
    return _sdk(fake, "key-of-account-a")


@pytest.fixture
def account_b(fake: FakeUpstream) -> genai.Client:
    return _sdk(fake, "key-of-account-b")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _create(client: genai.Client, **config):
    return await client.aio.caches.create(
        model=MODEL, config={"contents": [BIG_TEXT], "display_name": "handbook", "ttl": "600s", **config}
    )


def test_the_token_count_is_the_documented_one() -> None:
    assert cache_token_count({"contents": [{"parts": [{"text": BIG_TEXT}]}]}) == 1100
    assert cache_token_count({"systemInstruction": {"parts": [{"text": "abcd" * 3}]}}) == 3
    assert minimum_tokens("gemini-2.5-pro") == 4096
    assert minimum_tokens("gemini-2.5-flash") == 1024


async def test_create_answers_googles_cached_content_shape(account_a) -> None:
    cache = await _create(account_a)

    assert cache.name.startswith("cachedContents/")
    assert cache.model == f"models/{MODEL}"
    assert cache.display_name == "handbook"
    assert cache.usage_metadata.total_token_count == 1100
    assert 590 <= (cache.expire_time - cache.create_time).total_seconds() <= 600
    assert cache.update_time == cache.create_time


async def test_a_cache_below_the_minimum_is_refused_in_googles_words(account_a) -> None:
    with pytest.raises(errors.ClientError) as raised:
        await account_a.aio.caches.create(model=MODEL, config={"contents": ["too short"]})

    assert raised.value.code == 400
    assert raised.value.status == "INVALID_ARGUMENT"
    assert raised.value.message == "Cached content is too small. total_token_count=3, min_total_token_count=1024"


async def test_a_pro_model_needs_4096_tokens(account_a) -> None:
    with pytest.raises(errors.ClientError) as raised:
        await account_a.aio.caches.create(model="gemini-2.5-pro", config={"contents": [BIG_TEXT]})

    assert "total_token_count=1100, min_total_token_count=4096" in raised.value.message


async def test_another_accounts_cache_is_permission_denied(account_a, account_b) -> None:
    cache = await _create(account_a)

    for call in (
        account_b.aio.caches.get(name=cache.name),
        account_b.aio.caches.update(name=cache.name, config={"ttl": "60s"}),
        account_b.aio.caches.delete(name=cache.name),
    ):
        with pytest.raises(errors.ClientError) as raised:
            await call
        assert (raised.value.code, raised.value.status) == (403, "PERMISSION_DENIED")
    listed = [c async for c in await account_b.aio.caches.list()]
    assert listed == []


async def test_an_unknown_cache_is_not_found(account_a) -> None:
    with pytest.raises(errors.ClientError) as raised:
        await account_a.aio.caches.get(name="cachedContents/nosuchcache")

    assert (raised.value.code, raised.value.status) == (404, "NOT_FOUND")


async def test_an_expired_cache_vanishes(account_a) -> None:
    cache = await _create(account_a, ttl="0.3s")
    await asyncio.sleep(0.4)

    with pytest.raises(errors.ClientError) as raised:
        await account_a.aio.caches.get(name=cache.name)
    assert raised.value.code == 404
    assert [c async for c in await account_a.aio.caches.list()] == []


async def test_update_without_an_update_mask_moves_the_expiry(account_a, fake) -> None:
    cache = await _create(account_a)

    updated = await account_a.aio.caches.update(name=cache.name, config={"ttl": "7200s"})

    assert "updateMask" not in fake.requests[-1].query
    assert 7190 <= (updated.expire_time - updated.update_time).total_seconds() <= 7200
    assert updated.update_time > cache.update_time
    assert (await account_a.aio.caches.get(name=cache.name)).expire_time == updated.expire_time


async def test_update_by_expire_time(account_a) -> None:
    cache = await _create(account_a)
    wanted = cache.expire_time.replace(microsecond=0) + (cache.expire_time - cache.create_time)

    updated = await account_a.aio.caches.update(name=cache.name, config={"expire_time": wanted})

    assert updated.expire_time == wanted


async def test_list_pages_through_one_accounts_caches(account_a) -> None:
    names = [(await _create(account_a)).name for _ in range(3)]

    pager = await account_a.aio.caches.list(config={"page_size": 2})
    assert len(pager.page) == 2
    assert [c.name async for c in pager] == names


async def test_delete_answers_empty_and_forgets(account_a) -> None:
    cache = await _create(account_a)

    await account_a.aio.caches.delete(name=cache.name)

    with pytest.raises(errors.ClientError):
        await account_a.aio.caches.get(name=cache.name)


async def test_generation_with_an_own_cache_counts_its_tokens_as_cached(account_a) -> None:
    cache = await _create(account_a)

    response = await account_a.aio.models.generate_content(
        model=MODEL, contents="what does it say?", config={"cached_content": cache.name}
    )

    usage = response.usage_metadata
    assert usage.cached_content_token_count == 1100
    assert usage.prompt_token_count == 1100 + 5
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count


async def test_streamed_generation_with_a_cache_counts_it_on_every_chunk(account_a) -> None:
    cache = await _create(account_a)

    chunks = [
        chunk
        async for chunk in await account_a.aio.models.generate_content_stream(
            model=MODEL, contents="hi", config={"cached_content": cache.name}
        )
    ]

    assert all(chunk.usage_metadata.cached_content_token_count == 1100 for chunk in chunks)


async def test_count_tokens_of_a_request_naming_a_cache_counts_it(account_a, fake, http) -> None:
    cache = await _create(account_a)
    inner = {"model": f"models/{MODEL}", "contents": [{"parts": [{"text": "abcd"}]}], "cachedContent": cache.name}

    async with http.post(
        f"{fake.url}/v1beta/models/{MODEL}:countTokens",
        json={"generateContentRequest": inner},
        headers={"x-goog-api-key": "key-of-account-a"},
    ) as answer:
        counted = await answer.json()

    assert answer.status == 200, counted
    assert (counted["totalTokens"], counted["cachedContentTokenCount"]) == (1100 + 1, 1100)


async def test_generation_with_another_accounts_cache_is_permission_denied(account_a, account_b) -> None:
    cache = await _create(account_a)

    with pytest.raises(errors.ClientError) as raised:
        await account_b.aio.models.generate_content(model=MODEL, contents="hi", config={"cached_content": cache.name})

    assert raised.value.code == 403


async def test_generation_with_an_unknown_cache_is_not_found(account_a) -> None:
    with pytest.raises(errors.ClientError) as raised:
        await account_a.aio.models.generate_content(
            model=MODEL, contents="hi", config={"cached_content": "cachedContents/nosuchcache"}
        )

    assert raised.value.code == 404


async def test_generation_may_not_set_a_system_instruction_beside_a_cache(account_a) -> None:
    cache = await _create(account_a)

    with pytest.raises(errors.ClientError) as raised:
        await account_a.aio.models.generate_content(
            model=MODEL, contents="hi", config={"cached_content": cache.name, "system_instruction": "be brief"}
        )

    assert raised.value.code == 400
    assert "can not be used with GenerateContent request setting system_instruction" in raised.value.message


async def test_generation_with_a_cache_of_another_model_is_refused(account_a) -> None:
    cache = await _create(account_a)

    with pytest.raises(errors.ClientError) as raised:
        await account_a.aio.models.generate_content(
            model="gemini-2.0-flash", contents="hi", config={"cached_content": cache.name}
        )

    assert raised.value.code == 400
    assert "has to be the same" in raised.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"contents": [{"parts": [{"text": BIG_TEXT}]}]}, "model is required"),
        ({"model": "models/gemini-2.5-flash", "ttl": "ten minutes"}, "google.protobuf.Duration"),
        ({"model": "models/gemini-2.5-flash", "ttl": "60s", "expireTime": "2030-01-01T00:00:00Z"}, "Only one"),
        ({"model": "models/gemini-2.5-flash", "expireTime": "yesterday"}, "google.protobuf.Timestamp"),
        ({"model": "models/gemini-2.5-flash", "expireTime": "2001-01-01T00:00:00Z"}, "in the future"),
    ],
)
async def test_malformed_creates_are_refused_with_400(fake, http, body, message) -> None:
    async with http.post(f"{fake.url}/v1beta/cachedContents", json=body, headers={"x-goog-api-key": "k"}) as answer:
        error = (await answer.json())["error"]

    assert answer.status == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert message in error["message"]


async def test_an_embedding_model_cannot_cache(fake, http) -> None:
    body = {"model": "models/text-embedding-004", "contents": [{"parts": [{"text": BIG_TEXT}]}]}
    async with http.post(f"{fake.url}/v1beta/cachedContents", json=body) as answer:
        assert answer.status == 404
        assert "not supported for createCachedContent" in (await answer.json())["error"]["message"]


async def test_a_reference_check_given_by_the_server_refuses_the_create() -> None:
    from executors.standin.caches import CachedContents
    from executors.standin.errors import GoogleError

    def refuse_every_file(body, api_key) -> None:
        raise GoogleError(403, f"You do not have permission to access the File x or it may not exist ({api_key}).")

    fake = FakeUpstream()
    fake.caches = CachedContents(check_references=refuse_every_file)  # before start() binds the routes
    async with fake:
        with pytest.raises(errors.ClientError) as raised:
            await _create(_sdk(fake, "key-a"))

    assert raised.value.code == 403
    assert "(key-a)" in raised.value.message
