"""generateContent naming a cached content, through real Daphne and real executors, with the official SDK.

Needs the relay to bind the call (``resources.caches.bind_cache``, wired by the
lead when the branches merge): the call goes to the account holding the cache,
and when that account's executor is gone, the cache is created again on the
account that serves, from the kept request, transparently.
"""

from __future__ import annotations

import pytest
from google.genai import errors

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, ThreadedUpstream

MODEL = "gemini-2.5-flash"
BIG_TEXT = "A cached paragraph. " * 220  # 1,100 stand-in tokens: above flash's minimum


def _copies_of(upstream: ThreadedUpstream, agent: str) -> list:
    return [c for c in upstream.fake.caches.stored() if c.owner == f"upstream-key-of-{agent}"]


def test_generation_follows_the_cache_and_recreates_it_when_its_account_leaves(
    deployment: Deployment, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway("gateway-caches")
    agent_a = deployment.start_agent(gateway, deployment.executor_token("cache-a@example.com"), upstream.url, "agent-a")
    gateway.wait_for_executors(1)
    client = sdk_client(gateway, proxy_key)
    cache = client.caches.create(model=MODEL, config={"contents": [BIG_TEXT], "ttl": "900s"})

    first = client.models.generate_content(
        model=MODEL, contents="what does it say?", config={"cached_content": cache.name}
    )
    assert first.text.startswith("echo: what does it say?")
    assert first.usage_metadata.cached_content_token_count == 1100
    (copy_on_a,) = _copies_of(upstream, "agent-a")

    agent_a.kill()
    gateway.wait_for_executors(0)
    deployment.start_agent(gateway, deployment.executor_token("cache-b@example.com"), upstream.url, "agent-b")
    gateway.wait_for_executors(1)

    again = client.models.generate_content(model=MODEL, contents="and now?", config={"cached_content": cache.name})
    assert again.usage_metadata.cached_content_token_count == 1100
    (copy_on_b,) = _copies_of(upstream, "agent-b")
    assert copy_on_b.name != copy_on_a.name
    assert copy_on_b.expire_time == copy_on_a.expire_time  # the time it had left, not a fresh ttl
    streamed = list(
        client.models.generate_content_stream(model=MODEL, contents="stream it", config={"cached_content": cache.name})
    )
    assert streamed[-1].usage_metadata.cached_content_token_count == 1100
    assert len(_copies_of(upstream, "agent-b")) == 1  # bound to the copy it made, not making another
    assert client.caches.get(name=cache.name).name == cache.name


def test_a_copy_the_upstream_lost_is_made_again_transparently(
    deployment: Deployment, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway("gateway-caches-lost")
    deployment.start_agent(gateway, deployment.executor_token("cache-d@example.com"), upstream.url, "agent-d")
    gateway.wait_for_executors(1)
    client = sdk_client(gateway, proxy_key)
    cache = client.caches.create(model=MODEL, config={"contents": [BIG_TEXT]})
    (lost,) = _copies_of(upstream, "agent-d")
    upstream.call(_lose(upstream, lost.name))

    answer = client.models.generate_content(model=MODEL, contents="still there?", config={"cached_content": cache.name})

    assert answer.usage_metadata.cached_content_token_count == 1100
    (made_again,) = _copies_of(upstream, "agent-d")
    assert made_again.name != lost.name


async def _lose(upstream: ThreadedUpstream, name: str) -> None:
    upstream.fake.caches.lose(name)  # on the stand-in's own loop, as Google forgets it


def test_a_cache_of_another_member_cannot_be_named(deployment: Deployment, proxy_key: str, upstream) -> None:
    gateway = deployment.start_gateway("gateway-caches-isolation")
    deployment.start_agent(gateway, deployment.executor_token("cache-c@example.com"), upstream.url, "agent-c")
    gateway.wait_for_executors(1)
    cache = sdk_client(gateway, proxy_key).caches.create(model=MODEL, config={"contents": [BIG_TEXT]})
    bob = sdk_client(gateway, deployment.proxy_key("bob"))

    with pytest.raises(errors.ClientError) as raised:
        bob.models.generate_content(model=MODEL, contents="hi from bob", config={"cached_content": cache.name})

    assert raised.value.code == 404
    assert not [r for r in upstream.requests if b"hi from bob" in r.body]  # refused by gemproxy, never dispatched
