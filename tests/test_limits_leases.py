"""The concurrency slot is a lease: released by settle, and never stuck when settle does not run."""

from __future__ import annotations

import asyncio
import gc

import pytest

from accounts import leases
from accounts.counters import CountersUnavailable, get_counters
from accounts.limits import Rejection, admit

pytestmark = pytest.mark.django_db(transaction=True)


async def call(key):
    return await admit(key, model="gemini-2.5-flash", client_ip="10.0.0.1", request_body=b"{}")


async def test_settle_releases_the_slot(counter_backend, amake_key):
    key, _ = await amake_key(concurrency=1)
    first = await call(key)
    with pytest.raises(Rejection, match="concurrent requests, limit 1"):
        await call(key)
    await first.settle(0)
    second = await call(key)
    await second.settle(0)
    assert (await get_counters().peek(key.pk)).concurrency == 0


async def test_settling_twice_does_not_release_another_calls_slot(counter_backend, amake_key):
    key, _ = await amake_key(concurrency=1)
    first = await call(key)
    await first.settle(0)
    second = await call(key)
    await first.settle(0)
    with pytest.raises(Rejection):
        await call(key)
    await second.settle(0)


async def test_a_cancelled_request_releases_its_slot_in_finally(counter_backend, amake_key):
    """What the gateway does when the client disconnects: settle runs in a cancelled task."""
    key, _ = await amake_key(concurrency=1)
    admitted = asyncio.Event()

    async def request():
        admission = await call(key)
        try:
            admitted.set()
            await asyncio.sleep(3600)  # streaming from the executor
        finally:
            await admission.settle(0)

    task = asyncio.create_task(request())
    await admitted.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await (await call(key)).settle(0)


async def test_a_lease_nobody_settles_expires_by_itself(counter_backend, amake_key, settings):
    """A crashed gateway process: neither settle nor renewal ever runs again."""
    settings.GEMPROXY_LEASE_SECONDS = 0.3
    key, _ = await amake_key(concurrency=1)
    lost = await call(key)
    leases.keeper.release(lost)  # the process that renewed it is gone
    with pytest.raises(Rejection):
        await call(key)
    await asyncio.sleep(0.4)
    await (await call(key)).settle(0)


async def test_a_dropped_admission_stops_renewing_its_lease(counter_backend, amake_key, settings):
    """A bug that loses the admission without settling costs one lease period, not the slot."""
    settings.GEMPROXY_LEASE_SECONDS = 0.3
    key, _ = await amake_key(concurrency=1)
    lost = await call(key)
    del lost
    gc.collect()
    await asyncio.sleep(0.5)
    await (await call(key)).settle(0)


async def test_a_long_call_keeps_its_lease_alive(counter_backend, amake_key, settings):
    settings.GEMPROXY_LEASE_SECONDS = 0.3
    key, _ = await amake_key(concurrency=1)
    long_call = await call(key)
    await asyncio.sleep(0.8)  # well past the lease period; renewed every 0.1 s
    with pytest.raises(Rejection):
        await call(key)
    await long_call.settle(0)
    await (await call(key)).settle(0)


async def test_every_open_call_is_renewed_by_one_task_and_a_settled_one_no_more(counter_backend, amake_key, settings):
    """A task per call cost its creation and cancel on every call, and memory for every open stream."""
    settings.GEMPROXY_LEASE_SECONDS = 0.3
    key, _ = await amake_key(concurrency=3)
    calls = [await call(key) for _ in range(3)]
    tasks_before = len(asyncio.all_tasks())
    await asyncio.sleep(0.5)  # past the lease period: all three renewed
    with pytest.raises(Rejection):
        await call(key)
    assert len(asyncio.all_tasks()) == tasks_before, "no task per call"
    assert [task.get_name() for task in asyncio.all_tasks()].count("concurrency leases") == 1

    for admission in calls:
        await admission.settle(0)
    assert len(leases.keeper) == 0
    await asyncio.sleep(0.2)
    assert "concurrency leases" not in [task.get_name() for task in asyncio.all_tasks()], "idle, it ends"
    await (await call(key)).settle(0)


async def test_renewals_that_fail_are_logged_once_a_tick_and_the_others_go_on(
    counter_backend, amake_key, settings, caplog
):
    settings.GEMPROXY_LEASE_SECONDS = 0.3
    key, _ = await amake_key(concurrency=2)
    counters = get_counters()
    renewed: list[str] = []
    real_renew = counters.renew

    async def renew(grant) -> None:
        if grant.lease_id == failing.grant.lease_id:
            raise CountersUnavailable("redis is down")
        renewed.append(grant.lease_id)
        await real_renew(grant)

    failing, healthy = await call(key), await call(key)
    counters.renew = renew
    try:
        await asyncio.sleep(0.25)  # two ticks of 0.1 s at least
    finally:
        counters.renew = real_renew
    assert healthy.grant.lease_id in renewed
    lines = [r.getMessage() for r in caplog.records if "could not renew" in r.getMessage()]
    assert lines and all(line.startswith("could not renew 1 concurrency leases") for line in lines)
    await failing.settle(0)
    await healthy.settle(0)
