from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from google import genai

from tests.conftest import TEST_REDIS_URL, missing_component, throwaway_postgres_database
from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream


@pytest.fixture(scope="session")
def upstream() -> Iterator[ThreadedUpstream]:
    fake = ThreadedUpstream()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """An embedded install (SQLite, in-memory channel layer) with its processes stopped afterwards."""
    install = Deployment(Path(tmp_path_factory.mktemp("embedded")))
    yield install
    install.stop()


@pytest.fixture(scope="module")
def proxy_key(deployment: Deployment) -> str:
    return deployment.proxy_key("alice")


@pytest.fixture(scope="module")
def executor_token(deployment: Deployment) -> str:
    return deployment.executor_token("ana@example.com")


@pytest.fixture(scope="module")
def gateway(deployment: Deployment, executor_token: str, upstream: ThreadedUpstream) -> Gateway:
    """A gateway with one headless executor connected, shared by a module's tests."""
    gateway = deployment.start_gateway()
    deployment.start_agent(gateway, executor_token, upstream.url, name="executor-1")
    gateway.wait_for_executors(1)
    return gateway


# A genai.Client closes its HTTP client when garbage-collected, so a client
# made inline for one call must outlive the expression: keep them here.
_clients: dict[tuple[str, str, str | None], genai.Client] = {}


def sdk_client(gateway: Gateway, key: str, api_version: str | None = None) -> genai.Client:
    """The official SDK pointed at ``gateway``, as a member would configure it."""
    http_options: dict = {"base_url": gateway.url}
    if api_version:
        http_options["api_version"] = api_version
    cache_key = (gateway.url, key, api_version)
    if cache_key not in _clients:
        _clients[cache_key] = genai.Client(api_key=key, http_options=http_options)
    return _clients[cache_key]


@pytest.fixture(scope="module")
def postgres_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one module's processes, dropped afterwards."""
    with throwaway_postgres_database("gemproxy_e2e") as url:
        yield url


@pytest.fixture(scope="module")
def distributed(tmp_path_factory: pytest.TempPathFactory, postgres_database_url: str) -> Iterator[Deployment]:
    """A distributed install: Redis for channels, registry and counters; PostgreSQL for data."""
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        missing_component(f"Redis is not reachable at {TEST_REDIS_URL}: {error}")
    prefix = f"gemproxy-e2e:{uuid.uuid4().hex[:8]}:"
    install = Deployment(
        Path(tmp_path_factory.mktemp("distributed")),
        {"REDIS_URL": TEST_REDIS_URL, "GEMPROXY_REDIS_PREFIX": prefix, "DATABASE_URL": postgres_database_url},
    )
    yield install
    install.stop()
    client = redis.Redis.from_url(TEST_REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
