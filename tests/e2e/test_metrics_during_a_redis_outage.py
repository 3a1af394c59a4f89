"""What a load balancer and Prometheus see while Redis is down, on a real gateway with its own redis-server:
/readyz says 503 naming Redis within its timeout and 200 again once Redis and the executor are back;
/metrics still answers, with gemproxy_registry_up 0, and counts the calls the outage failed."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, wait_until
from tests.private_redis import PrivateRedis


@pytest.fixture(scope="module")
def private_redis(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrivateRedis]:
    server = PrivateRedis(Path(tmp_path_factory.mktemp("private-redis")))
    try:
        server.start()
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    private_redis: PrivateRedis,
    postgres_database_url: str,
    upstream: ThreadedUpstream,
) -> Iterator[tuple[Gateway, str]]:
    install = Deployment(
        Path(tmp_path_factory.mktemp("outage")),
        {"REDIS_URL": private_redis.url, "GEMPROXY_REDIS_PREFIX": "gemproxy:", "DATABASE_URL": postgres_database_url},
    )
    try:
        token, key = install.executor_token("outage@example.com"), install.proxy_key("olga")
        gateway = install.start_gateway("gateway")
        install.start_agent(gateway, token, upstream.url, name="agent")
        gateway.wait_for_executors(1)
        yield gateway, key
    finally:
        install.stop()


def get(url: str) -> tuple[int, bytes, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, response.read(), time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, error.read(), time.monotonic() - started


def scrape(gateway: Gateway) -> dict[tuple[str, tuple], float]:
    status, body, _ = get(f"{gateway.url}/metrics")
    assert status == 200, body
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def call(gateway: Gateway, key: str) -> int:
    request = urllib.request.Request(
        f"{gateway.url}/v1beta/models/gemini-2.5-flash:generateContent",
        data=json.dumps({"contents": [{"parts": [{"text": "during the outage"}]}]}).encode(),
        headers={"x-goog-api-key": key, "content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_readiness_and_metrics_through_a_redis_outage(served, private_redis: PrivateRedis) -> None:
    gateway, key = served
    assert get(f"{gateway.url}/readyz")[0] == 200
    before = scrape(gateway)
    errors = ("gemproxy_backend_errors_total", (("component", "channel_layer"),))
    unavailable = ("gemproxy_requests_total", (("method", "generateContent"), ("outcome", "unavailable")))

    private_redis.kill()
    status, body, seconds = get(f"{gateway.url}/readyz")
    statuses = [call(gateway, key) for _ in range(3)]
    during = scrape(gateway)

    assert status == 503
    assert seconds < 3  # GEMPROXY_READYZ_TIMEOUT (2 s), and some
    assert {"redis", "executors"} <= set(json.loads(body)["failed"])
    assert "database" not in json.loads(body)["failed"]
    assert statuses == [503, 503, 503]
    assert during[("gemproxy_registry_up", ())] == 0
    assert ("gemproxy_executors_connected", ()) not in during
    assert during[unavailable] - before.get(unavailable, 0) == 3
    assert during[errors] - before.get(errors, 0) == 3

    private_redis.start()
    wait_until(lambda: get(f"{gateway.url}/readyz")[0] == 200, 10, "ready again after Redis is back")
    after = scrape(gateway)
    assert after[("gemproxy_registry_up", ())] == 1
    assert after[("gemproxy_executors_connected", ())] == 1
    assert call(gateway, key) == 200
