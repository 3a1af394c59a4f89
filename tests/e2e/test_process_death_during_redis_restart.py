"""A stream in flight across a Redis restart ends promptly instead of hanging for the idle timeout.

Found by bench/soak.py: frames sent while Redis is away are lost (pub/sub),
and the executor's consumer, unable to forward one, closes the connection
without being able to tell the dispatcher. The dispatcher now sees the
outage (executors.liveness) and gives the attempt up once it has heard
nothing for 10 s since Redis answers again: here the client's stream ends
with Google's 503 within 20 s of the restart, not after 120 s.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.genai import errors

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, ThreadedUpstream, wait_until
from tests.private_redis import PrivateRedis

ENDS_WITHIN_SECONDS = 20.0


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.kill()


def test_a_stream_whose_frames_were_lost_in_a_redis_restart_ends_within_20_s(
    tmp_path: Path, private_redis: PrivateRedis, postgres_database_url: str, upstream: ThreadedUpstream
) -> None:
    install = Deployment(
        tmp_path,
        {"REDIS_URL": private_redis.url, "GEMPROXY_REDIS_PREFIX": "gemproxy:", "DATABASE_URL": postgres_database_url},
    )
    try:
        token, key = install.executor_token("outage@x.org"), install.proxy_key("olga")
        gateway = install.start_gateway_with_agent("gateway", token, upstream.url)
        stream = iter(
            sdk_client(gateway, key).models.generate_content_stream(
                model="gemini-2.5-flash", contents="across a redis restart #hold #chunks=3"
            )
        )
        assert next(stream).text

        private_redis.kill()
        upstream.release()  # the rest of the answer meets a Redis that is gone
        time.sleep(1.0)
        private_redis.start()
        answering = time.monotonic()
        try:
            rest = list(stream)
        except errors.ServerError as error:
            assert error.code == 503 and error.status == "UNAVAILABLE", error
        else:
            assert len(rest) == 2  # the frames made it after all: complete, not stuck
        took = time.monotonic() - answering

        assert took < ENDS_WITHIN_SECONDS, f"the stream ended {took:.1f}s after Redis answered again"
        wait_until(lambda: gateway.health()["busy"] == 0, 20, "the slot to be free")
    finally:
        install.stop()
