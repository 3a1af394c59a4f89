"""Counters in this process's memory, for the embedded deployment (one process).

Each operation runs without awaiting anything, so on one event loop it is
atomic; the lock also makes it safe from other threads (sync views peeking).
"""

from __future__ import annotations

import threading
import time

from accounts.counters import DAY, MINUTE, Counts, Denial, Grant, lease_seconds, window_of
from accounts.policy import Limits
from gemproxy_site.ids import new_id


class InProcessCounters:
    def __init__(self, lease_seconds: float = 60.0) -> None:
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()
        # (key_id, "rpm" | "rpd" | "tpm" | "tpd") -> (window, value); a stale window reads as 0.
        self._windows: dict[tuple[int, str], tuple[int, int]] = {}
        self._leases: dict[int, dict[str, float]] = {}  # key_id -> {lease_id: expiry}

    @classmethod
    def from_settings(cls) -> InProcessCounters:
        return cls(lease_seconds=lease_seconds())

    def _get(self, key_id: int, name: str, window: int) -> int:
        stored = self._windows.get((key_id, name))
        return stored[1] if stored and stored[0] == window else 0

    def _add(self, key_id: int, name: str, window: int, amount: int) -> None:
        self._windows[(key_id, name)] = (window, self._get(key_id, name, window) + amount)

    def _live_leases(self, key_id: int, now: float) -> dict[str, float]:
        leases = self._leases.setdefault(key_id, {})
        for lease_id in [lease for lease, expiry in leases.items() if expiry <= now]:
            del leases[lease_id]
        return leases

    async def acquire(self, key_id: int, limits: Limits, estimate: int) -> Grant | Denial:
        with self._lock:
            now = time.time()
            minute, day = window_of(now)
            rpm = self._get(key_id, "rpm", minute)
            rpd = self._get(key_id, "rpd", day)
            tpm = self._get(key_id, "tpm", minute)
            tpd = self._get(key_id, "tpd", day)
            leases = self._live_leases(key_id, now) if limits.concurrency else {}

            minute_reset, day_reset = (minute + 1) * MINUTE, (day + 1) * DAY
            if limits.rpm and rpm >= limits.rpm:
                return Denial("rpm", rpm, minute_reset, now)
            if limits.rpd and rpd >= limits.rpd:
                return Denial("rpd", rpd, day_reset, now)
            if limits.tpm and estimate and tpm + estimate > limits.tpm:
                return Denial("tpm", tpm, minute_reset, now)
            if limits.tpd and estimate and tpd + estimate > limits.tpd:
                return Denial("tpd", tpd, day_reset, now)
            if limits.concurrency and len(leases) >= limits.concurrency:
                return Denial("concurrency", len(leases), None, now)

            if limits.rpm:
                self._add(key_id, "rpm", minute, 1)
            if limits.rpd:
                self._add(key_id, "rpd", day, 1)
            if limits.tpm and estimate:
                self._add(key_id, "tpm", minute, estimate)
            if limits.tpd and estimate:
                self._add(key_id, "tpd", day, estimate)
            lease_id = ""
            if limits.concurrency:
                lease_id = new_id()
                leases[lease_id] = now + self.lease_seconds
            counts = Counts(
                rpm=self._get(key_id, "rpm", minute),
                rpd=self._get(key_id, "rpd", day),
                tpm=self._get(key_id, "tpm", minute),
                tpd=self._get(key_id, "tpd", day),
                concurrency=len(leases),
                now=now,
            )
            return Grant(key_id, limits, minute, day, estimate, lease_id, counts)

    async def settle(self, grant: Grant, tokens_used: int) -> None:
        with self._lock:
            minute, day = window_of(time.time())
            # The reservation is taken back only while its window is current;
            # the real use always counts in the window the call ends in.
            if grant.limits.tpm:
                self._add(grant.key_id, "tpm", minute, tokens_used - (grant.estimate if minute == grant.minute else 0))
            if grant.limits.tpd:
                self._add(grant.key_id, "tpd", day, tokens_used - (grant.estimate if day == grant.day else 0))
            if grant.lease_id:
                self._leases.get(grant.key_id, {}).pop(grant.lease_id, None)

    async def renew(self, grant: Grant) -> None:
        with self._lock:
            leases = self._leases.get(grant.key_id, {})
            if grant.lease_id in leases:
                leases[grant.lease_id] = time.time() + self.lease_seconds

    async def peek(self, key_id: int) -> Counts:
        return self.counts_now([key_id])[key_id]

    def counts_now(self, key_ids: list[int]) -> dict[int, Counts]:
        with self._lock:
            now = time.time()
            minute, day = window_of(now)
            return {
                key_id: Counts(
                    rpm=self._get(key_id, "rpm", minute),
                    rpd=self._get(key_id, "rpd", day),
                    tpm=self._get(key_id, "tpm", minute),
                    tpd=self._get(key_id, "tpd", day),
                    concurrency=len(self._live_leases(key_id, now)),
                    now=now,
                )
                for key_id in key_ids
            }
