"""A call naming a cache goes to an account holding a copy; with none reachable, or the copy lost, it is made again.

``bind_cache`` is what the relay calls for a generateContent with
``cachedContent``; the bound body is then sent, here, to the real stand-in on
the bound account, as the dispatcher would.
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


async def _bound(body: dict, member, prefer: frozenset[int] = frozenset()) -> caches.CacheBinding:
    binding = await caches.bind_cache(body, member, prefer)
    assert binding is not None
    return binding


def _asking(cache: CachedContent) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": "what does it say?"}]}], "cachedContent": cache.name}


async def _generate(accounts: StandInAccounts, binding: caches.CacheBinding, body: dict):
    return await accounts.call(
        "POST", GENERATE, body=json.dumps(binding.apply(body)).encode(), accounts=binding.accounts, model=MODEL
    )


@sync_to_async
def _holders(cache: CachedContent) -> frozenset[int]:
    return caches.accounts_holding(cache)


async def test_a_body_without_a_cache_is_not_bound(accounts, member) -> None:
    assert await caches.bind_cache({"contents": []}, member) is None


async def test_the_call_goes_to_the_account_holding_the_cache(accounts, member, a, b) -> None:
    cache = await _new_cache(member, prefer=frozenset({b}))

    binding = await _bound(_asking(cache), member)
    answer = await _generate(accounts, binding, _asking(cache))

    assert binding.account_id == b and binding.accounts == frozenset({b})
    assert binding.apply(_asking(cache))["cachedContent"].startswith("cachedContents/")
    assert binding.apply(_asking(cache))["cachedContent"] != cache.name
    assert answer.status == 200, answer.body
    assert answer.json()["usageMetadata"]["cachedContentTokenCount"] == 1100
    assert await _holders(cache) == frozenset({b})


async def test_the_snake_case_spelling_is_bound_too(accounts, member, b) -> None:
    cache = await _new_cache(member, prefer=frozenset({b}))

    binding = await _bound({"cached_content": cache.name}, member)

    assert set(binding.apply({"cached_content": cache.name})) == {"cached_content"}


async def test_when_the_holding_account_is_gone_the_cache_is_made_again_on_another(accounts, member, a, b) -> None:
    cache = await _new_cache(member, prefer=frozenset({a}))
    accounts.connected.discard(a)

    binding = await _bound(_asking(cache), member)
    answer = await _generate(accounts, binding, _asking(cache))

    assert binding.account_id == b
    assert answer.status == 200, answer.body
    assert answer.json()["usageMetadata"]["cachedContentTokenCount"] == 1100
    assert await _holders(cache) == frozenset({a, b})
    copy_on_b = accounts.standin.caches.find(binding.upstream_name, accounts.key_of(b))
    assert copy_on_b.expire_time == cache.expires_at  # the time it had left, not a fresh ttl


async def test_a_copy_the_upstream_lost_is_made_again(accounts, member, a) -> None:
    cache = await _new_cache(member, prefer=frozenset({a}))
    binding = await _bound(_asking(cache), member)
    accounts.standin.caches.lose(binding.upstream_name)

    lost = await _generate(accounts, binding, _asking(cache))
    assert caches.lost_upstream(lost.status, lost.body)
    binding = await caches.rebind_lost(binding)
    answer = await _generate(accounts, binding, _asking(cache))

    assert binding.account_id == a
    assert answer.status == 200, answer.body


async def test_an_upstream_error_of_another_kind_is_no_lost_copy() -> None:
    body = json.dumps({"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}).encode()

    assert not caches.lost_upstream(404, body)
    assert not caches.lost_upstream(500, b"{}")
    assert not caches.lost_upstream(404, b"<html>")


async def test_the_preferred_account_holding_a_copy_is_taken(accounts, member, a, b) -> None:
    cache = await _new_cache(member, prefer=frozenset({a}))
    await caches.ensure_on_account(cache, b)

    assert (await _bound(_asking(cache), member, frozenset({b}))).account_id == b
    assert (await _bound(_asking(cache), member, frozenset({a}))).account_id == a


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
        await caches.bind_cache(_asking(cache), other_member)

    assert (raised.value.http_status, raised.value.status) == (404, "NOT_FOUND")


async def test_an_expired_cache_is_not_found(accounts, member) -> None:
    cache = await _new_cache(member)
    await CachedContent.objects.filter(pk=cache.pk).aupdate(expires_at=datetime.now(UTC) - timedelta(seconds=1))

    with pytest.raises(ApiError) as raised:
        await caches.bind_cache(_asking(cache), member)

    assert raised.value.http_status == 404


@pytest.mark.parametrize("name", ["files/abc", "cachedContents/", "cachedContents/A", 17, ["cachedContents/x"]])
async def test_a_malformed_cache_name_is_refused(accounts, member, name) -> None:
    with pytest.raises(ApiError) as raised:
        await caches.bind_cache({"cachedContent": name}, member)

    assert (raised.value.http_status, raised.value.status) == (400, "INVALID_ARGUMENT")


async def test_with_no_account_connected_the_call_is_unavailable(accounts, member) -> None:
    cache = await _new_cache(member)
    accounts.connected.clear()

    with pytest.raises(ApiError) as raised:
        await caches.bind_cache(_asking(cache), member)

    assert (raised.value.http_status, raised.value.status) == (503, "UNAVAILABLE")


async def test_a_copy_about_to_expire_is_not_bound(accounts, member, a) -> None:
    cache = await _new_cache(member, prefer=frozenset({a}), ttl="3s")

    with pytest.raises(ApiError) as raised:
        await caches.bind_cache(_asking(cache), member)

    assert raised.value.http_status == 404  # the cache itself is about to end: no copy is made for it


async def test_bind_request_leaves_a_body_without_a_cache_untouched_unparsed(accounts, member) -> None:
    body = b'{"contents": [], "not json after all'

    assert await caches.bind_request(body, member) == (body, None)


async def test_bind_request_rewrites_the_generate_body(accounts, member, b) -> None:
    cache = await _new_cache(member, prefer=frozenset({b}))

    body, binding = await caches.bind_request(json.dumps(_asking(cache)).encode(), member)

    assert binding is not None and binding.accounts == frozenset({b})
    assert json.loads(body) == {**_asking(cache), "cachedContent": binding.upstream_name}


async def test_bind_request_finds_the_cache_inside_a_count_tokens_request(accounts, member, b) -> None:
    cache = await _new_cache(member, prefer=frozenset({b}))
    request = {"generateContentRequest": {"model": f"models/{MODEL}", **_asking(cache)}}

    body, binding = await caches.bind_request(json.dumps(request).encode(), member)

    assert binding is not None
    assert json.loads(body)["generateContentRequest"]["cachedContent"] == binding.upstream_name


# The pieces resources.binding takes for a kind of reference (find, load, ensure), used as it uses them.


async def test_as_a_reference_kind_a_cache_is_found_loaded_and_ensured_on_the_chosen_account(
    accounts, member, a, b
) -> None:
    cache = await _new_cache(member, prefer=frozenset({a}))
    body = _asking(cache)

    (reference,) = caches.cache_references(body)
    loaded = await caches.owned_caches([reference.resource_id], member.pk)
    held = await caches.ensure_caches_on(b, list(loaded.values()))
    reference.holder[reference.key] = held[reference.resource_id].upstream_name
    answer = await accounts.call("POST", GENERATE, body=json.dumps(body).encode(), accounts=frozenset({b}))

    assert answer.status == 200, answer.body
    assert answer.json()["usageMetadata"]["cachedContentTokenCount"] == 1100


async def test_as_a_reference_kind_another_members_cache_does_not_load(accounts, member, other_member) -> None:
    cache = await _new_cache(member)

    with pytest.raises(ApiError) as raised:
        await caches.owned_caches([cache.id], other_member.pk)

    assert raised.value.http_status == 404


async def test_the_upstreams_answer_for_a_lost_copy_names_it(accounts, member, a) -> None:
    # resources.binding recognises a lost copy by its upstream id in the error text.
    cache = await _new_cache(member, prefer=frozenset({a}))
    binding = await _bound(_asking(cache), member)
    accounts.standin.caches.lose(binding.upstream_name)

    lost = await _generate(accounts, binding, _asking(cache))

    assert binding.upstream_name.rpartition("/")[2] in lost.body.decode()
