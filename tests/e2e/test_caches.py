"""cachedContents through real Daphne and a real executor, with the official SDK as the member's client."""

from __future__ import annotations

import pytest
from google.genai import errors

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream

MODEL = "gemini-2.5-flash"
BIG_TEXT = "A cached paragraph. " * 220  # 1,100 stand-in tokens: above flash's minimum


@pytest.fixture(scope="module")
def bob_key(deployment: Deployment) -> str:
    return deployment.proxy_key("bob")


def _create(client, **config):
    return client.caches.create(
        model=MODEL, config={"contents": [BIG_TEXT], "display_name": "handbook", "ttl": "600s", **config}
    )


def test_create_get_list_update_delete_with_the_sdk(gateway: Gateway, proxy_key: str, upstream: ThreadedUpstream):
    client = sdk_client(gateway, proxy_key)

    cache = _create(client)
    assert cache.name.startswith("cachedContents/") and len(cache.name) == len("cachedContents/") + 12
    assert cache.model == f"models/{MODEL}"
    assert cache.display_name == "handbook"
    assert cache.usage_metadata.total_token_count == 1100
    assert cache.name not in {c.name for c in upstream.fake.caches.stored()}  # gemproxy's name, not Google's

    assert client.caches.get(name=cache.name).expire_time == cache.expire_time
    assert cache.name in [c.name for c in client.caches.list(config={"page_size": 5})]

    updated = client.caches.update(name=cache.name, config={"ttl": "7200s"})
    assert 7199 <= (updated.expire_time - updated.update_time).total_seconds() <= 7200
    copies = [c for c in upstream.fake.caches.stored() if c.owner == "upstream-key-of-executor-1"]
    assert updated.expire_time in {c.expire_time for c in copies}

    client.caches.delete(name=cache.name)
    with pytest.raises(errors.ClientError) as raised:
        client.caches.get(name=cache.name)
    assert raised.value.code == 404
    assert updated.expire_time not in {c.expire_time for c in upstream.fake.caches.stored()}


def test_the_list_pages_with_the_sdk(gateway: Gateway, proxy_key: str) -> None:
    client = sdk_client(gateway, proxy_key, "v1beta")
    names = [_create(client).name for _ in range(3)]

    pager = client.caches.list(config={"page_size": 2})

    assert len(pager.page) == 2
    assert set(names) <= {c.name for c in pager}


def test_another_member_cannot_see_or_use_the_cache(gateway: Gateway, proxy_key: str, bob_key: str) -> None:
    cache = _create(sdk_client(gateway, proxy_key))
    bob = sdk_client(gateway, bob_key)

    assert cache.name not in [c.name for c in bob.caches.list()]
    for call in (lambda: bob.caches.get(name=cache.name), lambda: bob.caches.delete(name=cache.name)):
        with pytest.raises(errors.ClientError) as raised:
            call()
        assert raised.value.code == 404
    assert sdk_client(gateway, proxy_key).caches.get(name=cache.name).name == cache.name


def test_a_cache_too_small_is_refused_in_googles_words(gateway: Gateway, proxy_key: str) -> None:
    with pytest.raises(errors.ClientError) as raised:
        sdk_client(gateway, proxy_key).caches.create(model=MODEL, config={"contents": ["short"]})

    assert raised.value.code == 400
    assert raised.value.message.startswith("Cached content is too small. total_token_count=")
