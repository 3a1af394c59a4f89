"""One call to the upstream on a chosen account, read to its end: for what gemproxy does on its own behalf.

Creating a cached content, uploading a copy of a file, asking a batch's state:
these are not a client's call relayed, they are the gateway's, made through the
same dispatcher (an executor of the account, retries, timeouts) and answered
whole, because they are small.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from executors.dispatcher import Exchange, StoredBody, Task


@dataclass(frozen=True)
class UpstreamAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    account_id: int
    account_label: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else {}

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


async def call(
    method: str,
    path: str,
    *,
    body: bytes | StoredBody = b"",
    query: str = "",
    headers: dict[str, str] | None = None,
    accounts: frozenset[int] | None = None,
    prefer: frozenset[int] = frozenset(),
    model: str = "",
) -> UpstreamAnswer:
    """Make one upstream call through an executor of one of ``accounts``; raises DispatchError like a relay."""
    task = Task(
        method=method,
        path=path,
        query=query,
        headers={"content-type": "application/json", **(headers or {})},
        body=body,
        model=model,
        accounts=accounts,
        prefer=prefer,
    )
    exchange = Exchange(task)
    try:
        head = await exchange.start()
        data = b"".join([piece async for piece in exchange.body()])
        assert exchange.account_id is not None  # start() returned: an attempt was made
        return UpstreamAnswer(head.status, head.headers, data, exchange.account_id, exchange.account_label)
    finally:
        await exchange.close()
