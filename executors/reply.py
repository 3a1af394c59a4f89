"""A reply channel: where one client request's frames arrive from the executor's consumer.

A consumer in this process hands its frames over directly (executors.handoff)
to the channel's process-local name. Only a consumer of another process sends
through the channel layer, so the channel takes a name there only when the
layer reaches other processes: at ``open()``, before the registry is asked for
an executor, as the layer needs (see ``open``); never in the embedded deployment.

Channel layers punish careless receiving: a cancelled ``receive()`` drops or
strands messages, and on Redis pub/sub a channel stays subscribed until a
receive on it is cancelled. So exactly one ``receive()`` is in flight, from
the first remote task until ``close()``, which cancels it (that is what
unsubscribes); timeouts wait on the mailbox, never on the receive.
"""

from __future__ import annotations

from functools import partial

from channels.layers import InMemoryChannelLayer, get_channel_layer

from executors import handoff


class ReplyChannel:
    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.name = ""
        self._mailbox: handoff.Mailbox | None = None
        # The channel's name in the layer and the receive on it, when the layer reaches other processes.
        self._layer_name = ""
        self._feed: handoff.Feed | None = None

    async def open(self) -> str:
        self.name = handoff.local_name()
        self._mailbox = handoff.open_mailbox(self.name)
        if not isinstance(self.layer, InMemoryChannelLayer):
            # Not lazily, at the first task to another process: on Redis pub/sub,
            # a channel subscribed just before the task is published misses the
            # answer when the subscription went out on a connection a Redis restart
            # broke and nothing used since (tests/e2e/test_redis_restart_recovery.py).
            await self._listen_on_layer()
        return self.name

    async def _listen_on_layer(self) -> None:
        assert self._mailbox is not None, "open() first"
        self._layer_name = await self.layer.new_channel()
        handoff.adopt_mailbox(self._layer_name, self._mailbox)
        self._feed = handoff.Feed(partial(self.layer.receive, self._layer_name), self._mailbox)

    async def address_for(self, consumer: str) -> str:
        """The name under which the ``consumer`` channel can send to this one."""
        if handoff.lives_here(consumer):
            return self.name
        if self._feed is None:
            await self._listen_on_layer()
        return self._layer_name

    async def send(self, channel: str, message: dict) -> None:
        """Send a message to an executor's consumer, in this process or through the layer."""
        await handoff.send(self.layer, channel, message)

    async def next(self, seconds: float) -> dict | None:
        """The next message, or None when ``seconds`` pass first."""
        assert self._mailbox is not None, "open() first"
        return await self._mailbox.next(seconds)

    async def close(self) -> None:
        handoff.close_mailbox(self.name)
        if self._layer_name:
            handoff.close_mailbox(self._layer_name)
        feed, self._feed = self._feed, None
        if feed is not None:
            await feed.close()
