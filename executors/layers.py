"""The in-memory channel layer of the embedded deployment, trimmed for the relay's traffic.

Every frame of every stream crosses the channel layer once, so its per-message
cost is the relay's. Channels' ``InMemoryChannelLayer`` deep-copies each
message on send and, on every receive, scans every queue in the process for
expired messages: with 500 open streams that scan alone is 500 queue checks
per frame. This subclass sweeps at most once a second and hands messages over
as they are, which is safe here because every sender builds a fresh message
and never touches it again.
"""

from __future__ import annotations

import asyncio
import time

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

SWEEP_SECONDS = 1.0


class LocalChannelLayer(InMemoryChannelLayer):
    def __init__(self, **config) -> None:
        super().__init__(**config)
        self._next_sweep = 0.0

    def _queue(self, channel: str) -> asyncio.Queue:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return queue

    async def send(self, channel: str, message: dict) -> None:
        try:
            self._queue(channel).put_nowait((time.time() + self.expiry, message))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def receive(self, channel: str) -> dict:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_SECONDS
            self._clean_expired()
        queue = self._queue(channel)
        try:
            _, message = await queue.get()
        finally:
            if queue.empty():
                self.channels.pop(channel, None)
        return message
