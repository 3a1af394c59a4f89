"""A call naming a cache prefers an account holding a copy; elsewhere, or once the copy is lost, it is made again.

``resources.binding.bind`` is what the relay calls for every model call, for
files and caches alike; the body it gives for the account the dispatcher chose
is sent, here, to the real stand-in on that account, as the dispatcher would.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from asgiref.sync import sync_to_async

from gateway.errors import ApiError
from resources import cache_requests, caches
from resources.binding import Binding, bind
from resources.models import CachedContent, Kind, Placement

if TYPE_CHECKING:
    from tests.caches_harness import StandInAccounts

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.caches_harness"]

MODEL = "gemini-2.5-flash"
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
BIG_TEXT = "A cached paragraph. " * 220


@pytest.fixture
def a(accounts: StandInAccounts) -> int:
    return accounts.ids["account-a@example.com"]


@pytest.fixture
def b(accounts: StandInAccounts) -> int:
    return accounts.ids["account-b@example.com"]


async def _new_cache(member, prefer: frozenset[int] = frozenset(), ttl: str = "600s") -> CachedContent:
    body = {"model": f"models/{MODEL}", "contents": [{"parts": [{"text": BIG_TEXT}]}], "ttl": ttl}
    wanted = cache_requests.read_create_request(body, datetime.now(UTC))
    cache, _ = await caches.create(member.pk, None, wanted, prefer=prefer)
    return cache


async def _bound(body: dict, member) -> Binding:
    binding = await bind(json.dumps(body).encode(), member.pk, ())
    assert binding is not None
    return binding


def _asking(cache: CachedContent) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": "what does it say?"}]}], "cachedContent": cache.name}


async def _generate(accounts: StandInAccounts, binding: Binding, account: int):
    body = await binding.body_for(account)
    return await accounts.call("POST", GENERATE, body=body, accounts=frozenset({account}), model=MODEL)


async def _copy_on(cache: CachedContent, account: int) -> str:
    placement = await Placement.objects.aget(kind=Kind.CACHED_CONTENT, resource_id=cache.id, account_id=account)
    return placement.upstream_name


@sync_to_async
def _holders(cache: CachedContent) -> frozenset[int]:
    return caches.accounts_holding(cache)


async def test_a_body_without_a_cache_is_not_bound(accounts, member) -> None:
    assert await bind(b'{"contents": []}', member.pk, ()) is None


async def test_a_body_without_a_cache_is_not_even_parsed(accounts, member) -> None:
    # The hot path: most calls name nothing of the proxy's.
    assert await bind(b'{"contents": [], "not json after all', member.pk, ()) is None


async def test_the_account_holding_the_cache_is_preferred_and_its_copy_named(accounts, member, a, b) -> None:
    cache = await _new_cache(member, prefer=frozenset({b}))

    binding = await _bound(_asking(cache), member)
    answer = await _generate(accounts, binding, b)

    assert binding.prefer == frozenset({b})
    assert answer.status == 200, answer.body
    assert answer.json()["usageMetadata"]["cachedContentTokenCount"] == 1100
    sent = json.loads(await binding.body_for(b))["cachedContent"]
    assert sent == await _copy_on(cache, b) and sent != cache.name
    assert await _holders(cache) == frozenset({b})


async def test_the_snake_case_spelling_is_bound_too(accounts, member, b) -> None:
    cache = await _new_cache(member, prefer=frozenset({b}))

    binding = await _bound({"cached_content": cache.name}, member)

    assert json.loads(await binding.body_for(b)) == {"cached_content": await _copy_on(cache, b)}


async def test_on_an_account_without_a_copy_the_cache_is_made_again_with_the_time_it_had_left(
    accounts, member, a, b
) -> None:
    cache = await _new_cache(member, prefer=frozenset({a}))
    accounts.connected.discard(a)

    binding = await _bound(_asking(cache), member)
    answer = await _generate(accounts, binding, b)

    assert answer.status == 200, answer.body
    assert answer.json()["usageMetadata"]["cachedContentTokenCount"] == 1100
    assert await _holders(cache) == frozenset({a, b})
    copy_on_b = accounts.standin.caches.find(await _copy_on(cache, b), accounts.key_of(b))
    assert copy_on_b.expire_time == cache.expires_at  # the time it had left, not a fresh ttl


async def test_a_copy_the_upstream_lost_is_forgotten_and_made_again(accounts, member, a) -> None:
    cache = await _new_cache(member, prefer=frozenset({a}))
    binding = await _bound(_asking(cache), member)
    accounts.standin.caches.lose(await _copy_on(cache, a))

    lost = await _generate(accounts, binding, a)
    assert await binding.lost(a, lost.status, lost.body)
    answer = await _generate(accounts, binding, a)

    assert lost.status == 404
    assert answer.status == 200, answer.body


async def test_an_upstream_error_of_another_kind_is_no_lost_copy(accounts, member, a) -> None:
    cache = await _new_cache(member, prefer=frozenset({a}))
    binding = await _bound(_asking(cache), member)
    await binding.body_for(a)
    body = json.dumps({"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}).encode()

    assert not await binding.lost(a, 404, body)
    assert not await binding.lost(a, 500, b"{}")
    assert await _holders(cache) == frozenset({a})


async def test_every_account_holding_a_copy_is_preferred(accounts, member, a, b) -> None:
    cache = await _new_cache(member, prefer=frozenset({a}))
    await caches.ensure_on_account(cache, b)

    assert (await _bound(_asking(cache), member)).prefer == frozenset({a, b})


async def test_ensure_on_account_reuses_a_live_copy(accounts, member, a) -> None:
    cache = await _new_cache(member, prefer=frozenset({a}))
    creations = len(accounts.calls)

    first = await caches.ensure_on_account(cache, a)

    assert first == (await Placement.objects.aget(kind=Kind.CACHED_CONTENT, account_id=a)).upstream_name
    assert len(accounts.calls) == creations


async def test_calls_at_once_make_one_copy(accounts, member, a, b) -> None:
    cache = await _new_cache(member, prefer=frozenset({a}))

    names = await asyncio.gather(*(caches.ensure_on_account(cache, b) for _ in range(5)))

    assert len(set(names)) == 1
    assert len(accounts.standin.caches) == 2


async def test_another_members_cache_is_not_found(accounts, member, other_member) -> None:
    cache = await _new_cache(member)

    with pytest.raises(ApiError) as raised:
        await bind(json.dumps(_asking(cache)).encode(), other_member.pk, ())

    assert (raised.value.http_status, raised.value.status) == (404, "NOT_FOUND")


async def test_an_expired_cache_is_not_found(accounts, member) -> None:
    cache = await _new_cache(member)
    await CachedContent.objects.filter(pk=cache.pk).aupdate(expires_at=datetime.now(UTC) - timedelta(seconds=1))

    with pytest.raises(ApiError) as raised:
        await bind(json.dumps(_asking(cache)).encode(), member.pk, ())

    assert raised.value.http_status == 404


@pytest.mark.parametrize("name", ["files/abc", "cachedContents/", "cachedContents/A", 17, ["cachedContents/x"]])
async def test_a_malformed_cache_name_is_refused(accounts, member, name) -> None:
    with pytest.raises(ApiError) as raised:
        await bind(json.dumps({"cachedContent": name}).encode(), member.pk, ())

    assert (raised.value.http_status, raised.value.status) == (400, "INVALID_ARGUMENT")


async def test_the_cache_inside_a_count_tokens_request_is_bound(accounts, member, b) -> None:
    cache = await _new_cache(member, prefer=frozenset({b}))
    request = {"generateContentRequest": {"model": f"models/{MODEL}", **_asking(cache)}}

    binding = await _bound(request, member)

    assert json.loads(await binding.body_for(b))["generateContentRequest"]["cachedContent"] == await _copy_on(cache, b)


async def test_a_call_naming_a_cache_and_an_unknown_file_is_refused_for_the_file(accounts, member, b) -> None:
    cache = await _new_cache(member, prefer=frozenset({b}))
    body = {**_asking(cache), "contents": [{"parts": [{"file_data": {"file_uri": "files/nosuchfile"}}]}]}

    with pytest.raises(ApiError) as raised:  # the file is checked as any file reference is
        await bind(json.dumps(body).encode(), member.pk, ())

    assert (raised.value.http_status, raised.value.status) == (403, "PERMISSION_DENIED")


async def test_as_a_reference_kind_another_members_cache_does_not_load(accounts, member, other_member) -> None:
    cache = await _new_cache(member)

    with pytest.raises(ApiError) as raised:
        await caches.owned_caches([cache.id], other_member.pk)

    assert raised.value.http_status == 404
