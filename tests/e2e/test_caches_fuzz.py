"""Hostile bytes against the cachedContents routes of a real gateway: no 5xx of its own, Google's shape, no hang.

schemathesis drives the published description (docs/openapi.yaml) of these
routes, with the checks of tests/e2e/test_api_fuzz.py; afterwards the gateway
still creates and serves a cache.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, settings

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Gateway
from tests.e2e.test_api_fuzz import ANSWER_WITHIN_SECONDS, CHECKS, EXAMPLES, schema


@schema.include(path_regex="^/{version}/cachedContents").parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_the_cached_contents_routes_never_fail_on_our_side(case, gateway: Gateway, proxy_key: str) -> None:
    started = time.monotonic()
    case.call_and_validate(
        base_url=gateway.url, headers={"x-goog-api-key": proxy_key}, checks=CHECKS, timeout=ANSWER_WITHIN_SECONDS
    )
    assert time.monotonic() - started < ANSWER_WITHIN_SECONDS


def test_after_the_fuzzing_a_cache_is_still_made_and_served(gateway: Gateway, proxy_key: str) -> None:
    client = sdk_client(gateway, proxy_key)

    cache = client.caches.create(model="gemini-2.5-flash", config={"contents": ["A cached paragraph. " * 220]})

    assert client.caches.get(name=cache.name).name == cache.name
