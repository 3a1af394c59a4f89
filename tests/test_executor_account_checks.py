"""A connected executor keeps serving only while its account is enabled and its token is still the account's."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from executors import consumer, protocol
from executors.models import ExecutorAccount
from executors.registry import get_registry
from tests.executor_sockets import communicator, connect_executor, new_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def quick_checks(monkeypatch) -> None:
    monkeypatch.setattr(consumer, "ACCOUNT_CHECK_SECONDS", 0.1)


@pytest.fixture
def quick_heartbeats(settings) -> None:
    settings.GEMPROXY_HEARTBEAT_INTERVAL = 0.1


def rotate(label: str) -> str:
    account = ExecutorAccount.objects.get(label=label)
    secret = account.set_new_token()
    account.save()
    return secret


async def test_the_check_interval_keeps_the_cut_off_within_20_seconds() -> None:
    assert consumer.ACCOUNT_CHECK_SECONDS <= 10


async def test_a_replaced_token_closes_its_connections_with_4005(quick_checks, token: str) -> None:
    socket = await connect_executor(token)

    new = await sync_to_async(rotate)("ana@example.com")

    assert await socket.receive_output(2) == {"type": "websocket.close", "code": protocol.CLOSE_TOKEN_REPLACED}
    assert await get_registry().snapshot() == []
    assert not (await communicator(token).connect())[0], "the old token opened a connection"
    assert (await communicator(new).connect())[0]


async def test_a_disabled_account_closes_its_connections_with_4004(quick_checks, token: str) -> None:
    socket = await connect_executor(token)

    await ExecutorAccount.objects.filter(label="ana@example.com").aupdate(enabled=False)

    assert await socket.receive_output(2) == {"type": "websocket.close", "code": protocol.CLOSE_ACCOUNT_DISABLED}
    assert await get_registry().snapshot() == []


async def test_another_accounts_rotation_leaves_a_connection_alone(quick_checks, token: str) -> None:
    await sync_to_async(new_token)("bob@example.com")
    socket = await connect_executor(token)

    await sync_to_async(rotate)("bob@example.com")
    await asyncio.sleep(0.5)

    assert len(await get_registry().snapshot()) == 1
    await socket.disconnect()


async def test_a_live_executor_missing_from_the_registry_registers_again(quick_heartbeats, token: str) -> None:
    socket = await connect_executor(token)
    [row] = await get_registry().snapshot()

    await get_registry().unregister(row["connection_id"])  # as a Redis restart, or a prune after a late pong
    await asyncio.sleep(0.5)

    assert [again["connection_id"] for again in await get_registry().snapshot()] == [row["connection_id"]]
    await socket.disconnect()
