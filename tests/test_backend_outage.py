"""While Redis is down, calls are refused at once with 503 UNAVAILABLE in Gemini's shape, never a 500 or a hang."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis
from asgiref.sync import sync_to_async

from accounts import usage
from accounts.models import UsageRecord
from executors.registry import get_registry
from tests.api_doubles import GENERATE, asgi_call
from tests.e2e.harness import free_port

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures"]  # the fixtures exchanges and key_header


@pytest.fixture
def redis_down(settings) -> Iterator[str]:
    """A Redis deployment whose Redis is not there: channel layer, registry and counters point at a closed port."""
    url = f"redis://127.0.0.1:{free_port()}"
    settings.REDIS_URL = url
    settings.REDIS_PREFIX = "gemproxy-test-down:"
    settings.GEMPROXY_REGISTRY = "executors.registry.RedisRegistry"
    settings.GEMPROXY_COUNTERS = "accounts.counters.in_redis.RedisCounters"
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [url], "prefix": "gemproxy-test-down:"},
        }
    }
    get_registry.cache_clear()
    yield url
    get_registry.cache_clear()


@pytest.mark.parametrize("limited", [False, True], ids=["dispatch-needs-redis", "limits-need-redis-too"])
async def test_a_call_while_redis_is_down_is_unavailable_promptly(redis_down, amake_key, limited: bool) -> None:
    _, secret = await amake_key(rpm=100) if limited else await amake_key()
    started = time.monotonic()

    answer = await asgi_call("POST", GENERATE, headers={"x-goog-api-key": secret}, body=b"{}", wait=20)

    assert time.monotonic() - started < 5
    assert answer.status == 503, answer.body
    assert answer.headers["content-type"] == "application/json; charset=UTF-8"
    assert answer.error["status"] == "UNAVAILABLE"
    assert answer.error["code"] == 503
    assert answer.headers["retry-after"] == "5"


async def test_a_call_refused_for_the_outage_is_recorded_as_unavailable(redis_down, amake_key) -> None:
    _, secret = await amake_key()

    await asgi_call("POST", GENERATE, headers={"x-goog-api-key": secret}, body=b"{}", wait=20)

    await sync_to_async(usage.flush)()
    record = await UsageRecord.objects.aget()
    assert (record.outcome, record.status_code) == ("unavailable", 503)


async def test_listing_models_while_redis_is_down_is_unavailable(redis_down, amake_key) -> None:
    _, secret = await amake_key()

    answer = await asgi_call("GET", "/v1beta/models", headers={"x-goog-api-key": secret}, wait=20)

    assert answer.status == 503, answer.body
    assert answer.error["status"] == "UNAVAILABLE"


async def test_redis_lost_in_the_middle_of_a_stream_ends_it_with_an_error_event(exchanges, key_header) -> None:
    exchanges.head.headers["content-type"] = "text/event-stream"
    exchanges.pieces = [b'data: {"candidates": []}\r\n\r\n', redis.ConnectionError("Connection reset by peer")]

    answer = await asgi_call(
        "POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", query="alt=sse", headers=key_header, body=b"{}"
    )

    assert answer.status == 200
    first, rest = answer.body.split(b"\r\n\r\n", 1)
    assert first == b'data: {"candidates": []}'
    assert json.loads(rest)["error"]["status"] == "UNAVAILABLE"
