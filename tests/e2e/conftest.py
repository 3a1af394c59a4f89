from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai

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


def sdk_client(gateway: Gateway, key: str, api_version: str | None = None) -> genai.Client:
    http_options: dict = {"base_url": gateway.url}
    if api_version:
        http_options["api_version"] = api_version
    return genai.Client(api_key=key, http_options=http_options)
