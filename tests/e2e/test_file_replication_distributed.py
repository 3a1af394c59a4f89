"""Replication across Daphne processes sharing Redis: any process's call gets the copy, which is made once."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from tests.conftest import TEST_REDIS_URL, missing_component
from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, ThreadedUpstream
from tests.e2e.test_file_replication import ask, store_file, uploads_by


@pytest.fixture(scope="module")
def shared_install(tmp_path_factory: pytest.TempPathFactory, postgres_database_url: str) -> Iterator[Deployment]:
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        missing_component(f"Redis is not reachable at {TEST_REDIS_URL}: {error}")
    prefix = f"gemproxy-e2e:{uuid.uuid4().hex[:8]}:"
    install = Deployment(
        Path(tmp_path_factory.mktemp("replication-distributed")),
        {
            "REDIS_URL": TEST_REDIS_URL,
            "GEMPROXY_REDIS_PREFIX": prefix,
            "DATABASE_URL": postgres_database_url,
        },
    )
    yield install
    install.stop()
    client = redis.Redis.from_url(TEST_REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def test_calls_through_two_processes_share_one_copy_made_through_the_other_process(
    shared_install: Deployment, upstream: ThreadedUpstream
) -> None:
    key = shared_install.proxy_key("alice")
    gateway_a = shared_install.start_gateway("replica-gw-a")
    gateway_b = shared_install.start_gateway("replica-gw-b")
    token = shared_install.executor_token("shared-files@example.com")
    shared_install.start_agent(gateway_a, token, upstream.url, name="files-on-a")
    gateway_a.wait_for_executors(1)
    gateway_b.wait_for_executors(1)
    size = 9 * 1024 * 1024
    file_id = store_file(shared_install, "shared.bin", os.urandom(size))

    for gateway in (gateway_a, gateway_b):
        sdk_client(gateway, key, "v1beta")  # made here once: threads making one each would close each other's

    with ThreadPoolExecutor(4) as pool:
        calls = [(gateway_b if n % 2 else gateway_a, n) for n in range(4)]
        answers = list(pool.map(lambda call: ask(call[0], key, file_id, f"across {call[1]}"), calls))

    assert len(uploads_by(upstream, "upstream-key-of-files-on-a")) == 1
    copy = next(
        f
        for f in upstream.fake.files.files.values()
        if f.owner == "upstream-key-of-files-on-a" and f.size_bytes == size
    )
    assert all(f"[file {copy.uri}]" in answer.text for answer in answers)
