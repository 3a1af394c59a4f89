"""GET /metrics counts every answered call by method and outcome, its duration and tokens, and reads the
registry at scrape time; no label names a key, a user or an executor connection."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from executors.dispatcher import ResponseHead
from executors.registry import ExecutorInfo, get_registry
from gateway import metrics
from tests.api_doubles import GENERATE, asgi_call
from tests.e2e.harness import free_port

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures"]  # the fixtures exchanges and key_header

USAGE = (
    b'{"candidates": [], "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 5, "thoughtsTokenCount": 2}}'
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(**headers: str) -> dict:
    answer = await asgi_call("GET", "/metrics", headers=headers)
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return samples(answer.body.decode())


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_calls_are_counted_by_method_and_outcome_ok_upstream_error_and_refused(exchanges, amake_key) -> None:
    _, secret = await amake_key(rpm=3)
    headers = {"x-goog-api-key": secret, "content-type": "application/json"}
    before = await scrape()

    exchanges.pieces = [USAGE]
    assert (await asgi_call("POST", GENERATE, headers=headers, body=b"{}")).status == 200
    assert (await asgi_call("POST", GENERATE, headers=headers, body=b"{}")).status == 200
    exchanges.head = ResponseHead(400, {"content-type": "application/json"})
    exchanges.pieces = [b'{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}']
    assert (await asgi_call("POST", GENERATE, headers=headers, body=b"{}")).status == 400
    assert (await asgi_call("POST", GENERATE, headers=headers, body=b"{}")).status == 429  # the 4th in a minute
    after = await scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    counted = "gemproxy_requests_total"
    assert delta(counted, method="generateContent", outcome="ok") == 2
    assert delta(counted, method="generateContent", outcome="upstream_error") == 1
    assert delta(counted, method="generateContent", outcome="rejected_quota") == 1
    assert delta("gemproxy_request_duration_seconds_count", method="generateContent") == 4
    assert delta("gemproxy_request_duration_seconds_bucket", method="generateContent", le="+Inf") == 4
    # The refused call never reached an executor: no first byte to time.
    assert delta("gemproxy_time_to_first_byte_seconds_count", method="generateContent") == 3


async def test_tokens_are_counted_by_model_and_kind(exchanges, key_header) -> None:
    exchanges.pieces = [USAGE]
    before = await scrape()

    await asgi_call("POST", GENERATE, headers=key_header, body=b"{}")
    await asgi_call("POST", GENERATE, headers=key_header, body=b"{}")
    after = await scrape()

    def tokens(kind: str) -> float:
        name, model = "gemproxy_tokens_total", "gemini-2.5-flash"
        return value(after, name, model=model, kind=kind) - value(before, name, model=model, kind=kind)

    assert (tokens("prompt"), tokens("candidates"), tokens("thoughts"), tokens("cached")) == (14, 10, 4, 0)


async def test_no_label_names_a_key_a_user_or_a_connection(exchanges, amake_key, member) -> None:
    key, secret = await amake_key()
    await asgi_call("POST", GENERATE, headers={"x-goog-api-key": secret}, body=b"{}")
    await get_registry().register(_executor("conn-secretive-1", "ana@example.com"), time.time() + 60)

    text = (await asgi_call("GET", "/metrics")).body.decode()

    for forbidden in (secret, key.prefix, member.username, member.email, "conn-secretive-1", "exec-conn-secretive-1"):
        assert forbidden not in text
    label_names = {
        name
        for family in text_string_to_metric_families(text)
        if family.name.startswith("gemproxy_")
        for sample in family.samples
        for name in sample.labels
    }
    assert label_names <= {"method", "outcome", "model", "kind", "component", "account", "le"}


def test_unknown_model_names_count_as_other_and_the_names_kept_are_bounded() -> None:
    names = metrics._Names(metrics._MODEL, limit=3)

    assert names("gemini-2.5-flash") == "gemini-2.5-flash"
    assert names("my-own-model") == "other"
    assert names("gemini-2.5-flash\nfake 1") == "other"
    assert names("gemini-" + "x" * 100) == "other"
    assert [names(f"gemini-{n}") for n in range(5)] == ["gemini-0", "gemini-1", "other", "other", "other"]
    assert names("gemini-2.5-flash") == "gemini-2.5-flash"  # one already kept stays


def test_unknown_method_names_count_as_other() -> None:
    names = metrics._Names(metrics._METHOD, limit=2)

    assert names("generateContent") == "generateContent"
    assert names("not a method") == "other"
    assert names("x" * 41) == "other"


async def test_executors_and_their_slots_are_read_from_the_registry_at_scrape_time() -> None:
    registry = get_registry()
    await registry.register(_executor("conn-1", "ana@example.com", slots=4), time.time() + 60)
    await registry.register(_executor("conn-2", "ana@example.com", slots=2), time.time() + 60)
    await registry.register(_executor("conn-3", "ben@example.com", slots=3), time.time() + 60)
    await registry.acquire("gemini-2.5-flash")
    await registry.acquire("gemini-2.5-flash")
    await registry.cool_down(3, "gemini-2.5-pro", 60, "ben@example.com")

    scraped = await scrape()

    assert value(scraped, "gemproxy_registry_up") == 1
    assert value(scraped, "gemproxy_executors_connected") == 3
    assert value(scraped, "gemproxy_executor_slots", account="ana@example.com") == 6
    assert value(scraped, "gemproxy_executor_slots", account="ben@example.com") == 3
    busy = [
        value(scraped, "gemproxy_executor_busy_slots", account=account)
        for account in ("ana@example.com", "ben@example.com")
    ]
    assert sum(busy) == 2
    assert value(scraped, "gemproxy_cooldowns") == 1

    await registry.unregister("conn-3")
    assert value(await scrape(), "gemproxy_executors_connected") == 2


async def test_a_scrape_while_the_registry_is_unreachable_still_answers(settings) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}"
    settings.GEMPROXY_REGISTRY = "executors.registry.RedisRegistry"
    settings.GEMPROXY_READYZ_TIMEOUT = 1.0
    get_registry.cache_clear()
    started = time.monotonic()

    scraped = await scrape()

    assert time.monotonic() - started < 3
    assert value(scraped, "gemproxy_registry_up") == 0
    assert ("gemproxy_executors_connected", ()) not in scraped  # unknown, not zero


async def test_a_backing_service_failure_is_counted_by_where_it_struck(settings, amake_key) -> None:
    _, secret = await amake_key(rpm=100)
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}"
    settings.REDIS_PREFIX = "gemproxy-test-down:"
    settings.GEMPROXY_COUNTERS = "accounts.counters.in_redis.RedisCounters"
    before = await scrape()

    answer = await asgi_call("POST", GENERATE, headers={"x-goog-api-key": secret}, body=b"{}", wait=20)

    assert answer.status == 503
    after = await scrape()
    name = "gemproxy_backend_errors_total"
    assert value(after, name, component="counters") - value(before, name, component="counters") == 1
    assert value(after, name, component="channel_layer") == value(before, name, component="channel_layer")


async def test_the_usage_queue_depth_is_exposed(monkeypatch) -> None:
    monkeypatch.setattr(metrics.usage, "depth", lambda: 42)

    assert value(await scrape(), "gemproxy_usage_queue_depth") == 42


class TestBearerToken:
    async def test_without_the_token_the_scrape_is_refused(self, settings) -> None:
        settings.GEMPROXY_METRICS_TOKEN = "metrics-token-123"

        answer = await asgi_call("GET", "/metrics")

        assert answer.status == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert b"gemproxy_requests" not in answer.body

    @pytest.mark.parametrize(
        "authorization",
        [
            "Bearer wrong",
            "Bearer metrics-token-12",
            "Bearer metrics-token-1234",
            "Basic metrics-token-123",
            "Bearer",
            "metrics-token-123",
        ],
    )
    async def test_a_wrong_token_is_refused(self, settings, authorization: str) -> None:
        settings.GEMPROXY_METRICS_TOKEN = "metrics-token-123"

        assert (await asgi_call("GET", "/metrics", headers={"authorization": authorization})).status == 401

    async def test_the_right_token_is_let_in(self, settings) -> None:
        settings.GEMPROXY_METRICS_TOKEN = "metrics-token-123"

        answer = await asgi_call("GET", "/metrics", headers={"authorization": "Bearer metrics-token-123"})

        assert answer.status == 200
        assert b"gemproxy_requests" in answer.body

    async def test_without_a_configured_token_anyone_may_scrape(self, settings) -> None:
        settings.GEMPROXY_METRICS_TOKEN = ""

        assert (await asgi_call("GET", "/metrics")).status == 200


async def test_only_get_is_answered() -> None:
    assert (await asgi_call("POST", "/metrics", body=b"x")).status == 405


def _executor(connection_id: str, account: str, slots: int = 4) -> ExecutorInfo:
    account_id = {"ana@example.com": 1, "ben@example.com": 3}[account]
    return ExecutorInfo(
        connection_id=connection_id,
        executor_id=f"exec-{connection_id}",
        channel_name=f"executor.{connection_id}",
        account_id=account_id,
        account_label=account,
        software="test/1",
        max_concurrency=slots,
        connected_at=time.time(),
    )


async def test_a_channel_layer_or_registry_failure_is_counted_as_such(settings, amake_key) -> None:
    _, secret = await amake_key()  # no limits: the counters are not asked
    url = f"redis://127.0.0.1:{free_port()}"
    settings.REDIS_URL = url
    settings.GEMPROXY_REGISTRY = "executors.registry.RedisRegistry"
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [url]}}
    }
    get_registry.cache_clear()
    before = await scrape()

    answer = await asgi_call("POST", GENERATE, headers={"x-goog-api-key": secret}, body=b"{}", wait=20)

    assert answer.status == 503
    after = await scrape()
    name = "gemproxy_backend_errors_total"
    assert value(after, name, component="channel_layer") - value(before, name, component="channel_layer") == 1
    assert value(after, name, component="counters") == value(before, name, component="counters")
