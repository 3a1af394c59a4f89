"""A connection missing from the registry registers again only once tasks sent to its channel reach it.

After a Redis restart the registry answers before the pub/sub channel layer has
subscribed again to the executors' channels; an entry registered in that gap
would swallow the tasks sent to it (each call then waits for an ack in vain).
"""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from executors import consumer
from executors.registry import get_registry
from tests.executor_sockets import connect_executor, new_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_registry() -> None:
    get_registry.cache_clear()


@pytest.fixture
def quick_heartbeats(settings, monkeypatch) -> None:
    settings.GEMPROXY_HEARTBEAT_INTERVAL = 0.1
    monkeypatch.setattr(consumer, "PROBE_SECONDS", 0.1)
    monkeypatch.setattr(consumer, "PROBE_RESEND_SECONDS", 0.05)


@pytest.fixture
def token(db) -> str:
    return new_token("ana@example.com")


async def wait_for_entries(count: int, seconds: float = 2.0) -> list[dict]:
    for _ in range(int(seconds / 0.02)):
        rows = await get_registry().snapshot()
        if len(rows) == count:
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"the registry did not reach {count} entries")


async def test_a_lost_entry_comes_back_only_when_the_channel_delivers_again(
    quick_heartbeats, token: str, monkeypatch
) -> None:
    socket = await connect_executor(token)
    [entry] = await wait_for_entries(1)
    layer = get_channel_layer()
    original_send = layer.send
    deaf = True

    async def send(channel: str, message: dict) -> None:
        # As the pub/sub layer between Redis's restart and its resubscription.
        if not (deaf and channel == entry["channel_name"]):
            await original_send(channel, message)

    monkeypatch.setattr(layer, "send", send)
    await get_registry().unregister(entry["connection_id"])  # what the restart did to the registry

    await asyncio.sleep(0.6)  # several refreshes
    assert await get_registry().snapshot() == [], "registered again while its channel was deaf"

    deaf = False
    [again] = await wait_for_entries(1)
    assert again["connection_id"] == entry["connection_id"]
    await socket.disconnect()
