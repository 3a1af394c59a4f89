"""Keeping the concurrency leases of this process's open calls alive, from one task.

A call under a concurrency limit holds a lease that expires unless renewed
(``accounts.counters``), so that a call whose settle never runs cannot hold its
slot for long. One task renews every lease of the process, each tick a third
of the lease period, instead of a task per call: that task's creation, timer
and cancel were paid on every call, and it held about 1.2 KiB for each open
stream (measured with 500 streams open).

A lease is renewed until its call settles, its admission is dropped without
settling (a bug: the lease then runs out on its own), or the gateway's total
time limit for a call has passed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from accounts.counters import Counters, Grant

logger = logging.getLogger(__name__)


@dataclass
class _Lease:
    holder: weakref.ref  # the admission; gone when it was dropped without settling
    counters: Counters
    grant: Grant
    deadline: float  # time.monotonic() after which it is no longer renewed


class LeaseKeeper:
    def __init__(self) -> None:
        self._leases: dict[int, _Lease] = {}
        self._task: asyncio.Task | None = None

    def keep(self, holder: Any, counters: Counters, grant: Grant) -> None:
        """Renew ``grant``'s lease while ``holder`` lives, until ``release(holder)``."""
        token = id(holder)
        deadline = time.monotonic() + getattr(settings, "GEMPROXY_TOTAL_TIMEOUT", 900.0) + counters.lease_seconds
        self._leases[token] = _Lease(
            weakref.ref(holder, lambda _: self._leases.pop(token, None)), counters, grant, deadline
        )
        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="concurrency leases")

    def release(self, holder: Any) -> None:
        self._leases.pop(id(holder), None)

    def __len__(self) -> int:
        return len(self._leases)

    async def _run(self) -> None:
        while self._leases:
            await asyncio.sleep(min(lease.counters.lease_seconds for lease in self._leases.values()) / 3)
            await self._renew_all()

    async def _renew_all(self) -> None:
        now, failed = time.monotonic(), 0
        last_error: BaseException | None = None
        for token, lease in list(self._leases.items()):
            if lease.holder() is None or now > lease.deadline:
                self._leases.pop(token, None)
                continue
            try:
                await lease.counters.renew(lease.grant)
            except Exception as error:  # CountersUnavailable or worse: one lease's failure never stops the others'
                failed, last_error = failed + 1, error
        if failed:
            # One line a tick, not one per lease, while the counters are out of reach.
            logger.warning("could not renew %d concurrency leases: %r", failed, last_error)


keeper = LeaseKeeper()
