"""Fixtures shared by the suite: real Redis, members and their keys, the usage writer.

Redis is a real component here. When it is missing, tests that need it are
skipped on a developer's machine and fail under CI (CI=true).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis

TEST_REDIS_URL = os.environ.get("GEMPROXY_TEST_REDIS_URL", "redis://127.0.0.1:6379")
RUN_ID = uuid.uuid4().hex[:8]


def missing_component(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def redis_url() -> str:
    """A reachable Redis, or a skip (a failure under CI)."""
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        missing_component(f"Redis is not reachable at {TEST_REDIS_URL}: {exc}")
    return TEST_REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of this test alone; its keys are deleted afterwards."""
    prefix = f"gemproxy-test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["in_process", "redis"])
def counter_backend(request: pytest.FixtureRequest, settings) -> str:
    """Runs a test once with the embedded counters and once with the Redis ones."""
    if request.param == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        settings.REDIS_URL = TEST_REDIS_URL
        settings.REDIS_PREFIX = prefix
        settings.GEMPROXY_COUNTERS = "accounts.counters.in_redis.RedisCounters"
    else:
        settings.GEMPROXY_COUNTERS = "accounts.counters.in_process.InProcessCounters"
    return request.param


@pytest.fixture(autouse=True)
def fresh_registry() -> None:
    """Each test gets the executor registry its own settings choose, and an empty one."""
    from executors.registry import get_registry

    get_registry.cache_clear()


@pytest.fixture
def token(db) -> str:
    """The token of a saved executor account labelled ana@example.com."""
    from tests.executor_sockets import new_token

    return new_token()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """PBKDF2 costs a third of a second per user; tests do not need it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user(username="ada", password="pw-ada-123", email="ada@example.com")


@pytest.fixture
def other_member(django_user_model):
    return django_user_model.objects.create_user(username="bob", password="pw-bob-123")


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser(username="root", password="pw-root-123")


@pytest.fixture
def make_key(member) -> Callable:
    """``make_key(rpm=10, ...)`` -> (ProxyKey, secret), saved, its policy already computed.

    Computing the policy here keeps the database out of async tests that only admit.
    """
    from accounts.models import ProxyKey

    def make(user=None, **fields):
        key = ProxyKey(user=user or member, **fields)
        secret = key.set_new_secret()
        key.save()
        key = ProxyKey.objects.select_related("user", "user__default_limits").get(pk=key.pk)
        key.policy  # noqa: B018
        return key, secret

    return make


@pytest.fixture
def amake_key(make_key) -> Callable:
    """``await amake_key(rpm=10)``: ``make_key`` for async tests (which need ``django_db(transaction=True)``)."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    def make_in_thread(user, **fields):
        try:
            return make_key(user, **fields)
        finally:
            connections.close_all()  # this worker thread's own; PostgreSQL cannot drop a database in use

    async def make(user=None, **fields):
        return await sync_to_async(make_in_thread)(user, **fields)

    return make


@pytest.fixture(autouse=True)
def usage_written_on_flush(settings, tmp_path) -> Iterator[None]:
    """Usage records are written only when a test calls ``accounts.usage.flush()``.

    A background writer would use its own database connection, outside the
    test's transaction. Each test has a usage journal of its own (embedded mode).
    """
    from accounts import usage
    from accounts.usage_queue import reset_usage_queue

    settings.GEMPROXY_USAGE_FLUSH_SECONDS = 0
    settings.GEMPROXY_USAGE_JOURNAL_DIR = str(tmp_path / "usage-journal")
    reset_usage_queue()  # each test's own settings decide which durable queue there is
    usage.discard_pending()
    yield
    usage.discard_pending()
    reset_usage_queue()


TEST_POSTGRES_URL = os.environ.get("GEMPROXY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def throwaway_postgres_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards (a failure, not a skip, under CI)."""
    import psycopg

    try:
        server = psycopg.connect(TEST_POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as error:
        missing_component(f"PostgreSQL is not reachable at {TEST_POSTGRES_URL}: {error}")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with server:
        server.execute(f'CREATE DATABASE "{name}"')
        try:
            yield TEST_POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
        finally:
            server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


POSTGRESQL_ALIAS = "postgresql"


class EverythingOnPostgreSQL:
    """A database router that sends every model to the ``postgresql_database`` alias."""

    def db_for_read(self, model, **hints) -> str:
        return POSTGRESQL_ALIAS

    def db_for_write(self, model, **hints) -> str:
        return POSTGRESQL_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True


@pytest.fixture(scope="module")
def postgresql_database(django_db_setup, django_db_blocker) -> Iterator[str]:
    """A migrated throwaway PostgreSQL database, as the Django alias ``postgresql``; dropped afterwards.

    A failure rather than a skip under CI when PostgreSQL is missing.
    """
    import dj_database_url
    from django.core.management import call_command
    from django.db import connections

    with throwaway_postgres_database("gemproxy_test") as url:
        config = dj_database_url.parse(url)
        connections.settings[POSTGRESQL_ALIAS] = connections.configure_settings(
            {"default": connections.settings["default"], POSTGRESQL_ALIAS: config}
        )[POSTGRESQL_ALIAS]
        try:
            with django_db_blocker.unblock():
                call_command("migrate", database=POSTGRESQL_ALIAS, verbosity=0)
            yield POSTGRESQL_ALIAS
        finally:
            connections[POSTGRESQL_ALIAS].close()
            del connections[POSTGRESQL_ALIAS]
            del connections.settings[POSTGRESQL_ALIAS]


@pytest.fixture
def on_postgresql(postgresql_database: str, settings) -> str:
    """Every model is read and written on real PostgreSQL in this test.

    Mark the test ``django_db(databases=["default", "postgresql"])``: pytest-django then
    undoes its writes there too.
    """
    settings.DATABASE_ROUTERS = ["tests.conftest.EverythingOnPostgreSQL"]
    return postgresql_database
