"""A reply channel: where one client request's frames arrive from the executor's consumer.

Channel layers punish careless receiving: a cancelled ``receive()`` drops or
strands messages, and on Redis pub/sub a channel stays subscribed until a
receive on it is cancelled. So exactly one ``receive()`` is in flight at any
time, timeouts wait on it without cancelling it, and ``close()`` cancels the
last one, which is what unsubscribes.
"""

from __future__ import annotations

import asyncio
import contextlib

from channels.layers import get_channel_layer


class ReplyChannel:
    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.name = ""
        self._pending: asyncio.Task | None = None

    async def open(self) -> str:
        self.name = await self.layer.new_channel()
        self._pending = asyncio.ensure_future(self.layer.receive(self.name))
        return self.name

    async def next(self, seconds: float) -> dict | None:
        """The next message, or None when ``seconds`` pass first."""
        assert self._pending is not None, "open() first"
        done, _ = await asyncio.wait({self._pending}, timeout=max(0.0, seconds))
        if not done:
            return None
        message = self._pending.result()
        self._pending = asyncio.ensure_future(self.layer.receive(self.name))
        return message

    async def close(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending
