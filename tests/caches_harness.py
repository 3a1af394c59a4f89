"""Executor accounts for the cached-contents tests: each one a different API key on one real stand-in.

``StandInAccounts.call`` replaces ``resources.upstream.call``: it serves on one
of the *connected* accounts the call allows (``accounts``, ``prefer`` first),
strictly, as the dispatcher does once it honours them, and raises the
dispatcher's 503 when none is connected. ``reachable_accounts`` answers from
the same set, so a test disconnects an account by removing it from ``connected``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from asgiref.sync import sync_to_async

from executors.dispatcher import DispatchError
from executors.models import ExecutorAccount
from resources import caches, upstream
from tests.fake_upstream import FakeUpstream


@dataclass
class StandInAccounts:
    standin: FakeUpstream
    session: aiohttp.ClientSession
    ids: dict[str, int] = field(default_factory=dict)
    connected: set[int] = field(default_factory=set)
    calls: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, account id

    def key_of(self, account_id: int) -> str:
        return f"upstream-key-of-account-{account_id}"

    async def add(self, label: str) -> int:
        account = await sync_to_async(ExecutorAccount.objects.create)(label=label, token_prefix=label[:8])
        self.ids[label] = account.pk
        self.connected.add(account.pk)
        return account.pk

    async def reachable(self) -> frozenset[int]:
        return frozenset(self.connected)

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        query: str = "",
        headers: dict[str, str] | None = None,
        accounts: frozenset[int] | None = None,
        prefer: frozenset[int] = frozenset(),
        model: str = "",
    ) -> upstream.UpstreamAnswer:
        pool = self.connected if accounts is None else self.connected & accounts
        if not pool:
            raise DispatchError(503, "UNAVAILABLE", "No executor is connected.", "unavailable")
        account_id = min(pool & prefer or pool)
        self.calls.append((method, path, account_id))
        url = self.standin.url + path + (f"?{query}" if query else "")
        request_headers = {"content-type": "application/json", "x-goog-api-key": self.key_of(account_id)}
        async with self.session.request(method, url, data=body, headers=request_headers) as answer:
            data = await answer.read()
            return upstream.UpstreamAnswer(answer.status, dict(answer.headers), data, account_id, f"acct-{account_id}")


@pytest.fixture
async def standin() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        yield fake


@pytest.fixture
async def accounts(standin: FakeUpstream, monkeypatch) -> AsyncIterator[StandInAccounts]:
    """Accounts A and B, both connected, in front of one stand-in."""
    async with aiohttp.ClientSession() as session:
        held = StandInAccounts(standin, session)
        await held.add("account-a@example.com")
        await held.add("account-b@example.com")
        monkeypatch.setattr(upstream, "call", held.call)
        monkeypatch.setattr(caches, "reachable_accounts", held.reachable)
        yield held
