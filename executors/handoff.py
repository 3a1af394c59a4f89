"""Messages between a dispatcher and an executor's consumer that live in the same process, handed over directly.

Every task goes from a dispatcher to a consumer, and every frame back to the
request's reply channel. When both ends are in this process (always in the
embedded deployment, and for a distributed process's own executors) the
channel layer adds nothing but cost: a task per receive, a copy or a trip
through Redis. So each consumer and reply channel of this process keeps a
``Mailbox`` here under its channel name; ``send`` puts a message straight into
it, in order, and only a channel that lives elsewhere goes through the layer.

A mailbox also receives what other processes send through the layer: a
``Feed`` keeps the one ``receive()`` in flight on that channel and moves each
message in, so a channel's messages reach its reader in one queue, and the
layer's receive is cancelled only when the channel closes (see executors.reply).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable

from channels.layers import BaseChannelLayer

from gemproxy_site.ids import new_id

# Names of channels that exist only in this process, never in the channel layer.
LOCAL_PREFIX = "local!"

_mailboxes: dict[str, Mailbox] = {}


class Mailbox:
    """The messages of one channel of this process, in order, for its one reader."""

    def __init__(self) -> None:
        # Made when a message finds no reader waiting: most go straight to a waiting reader,
        # and an empty deque is 0.7 KiB, kept by every open stream's reply channel.
        self._messages: deque[dict] | None = None
        # The reader waiting for the next message, if any: resolved with that message.
        self._waiter: asyncio.Future | None = None
        # Why no more messages can come (the layer's receive failed), raised to the reader once the queue is empty.
        self._error: BaseException | None = None

    def put(self, message: dict) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(message)
        elif self._messages is None:
            self._messages = deque((message,))
        else:
            self._messages.append(message)

    def fail(self, error: BaseException) -> None:
        self._error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_exception(error)

    def get(self) -> asyncio.Future:
        """A future of the next message: a plain future, not a task, so that waiting for one costs little."""
        future = asyncio.get_running_loop().create_future()
        if self._messages:
            future.set_result(self._messages.popleft())
        elif self._error is not None:
            future.set_exception(self._error)
        else:
            assert self._waiter is None or self._waiter.done(), "a mailbox has one reader"
            self._waiter = future
        return future

    async def next(self, seconds: float) -> dict | None:
        """The next message, or None when ``seconds`` pass first."""
        if self._messages:
            return self._messages.popleft()
        future = self.get()
        timer = asyncio.get_running_loop().call_later(max(0.0, seconds), _expire, future)
        try:
            return await future
        finally:
            timer.cancel()


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def open_mailbox(channel: str) -> Mailbox:
    return adopt_mailbox(channel, Mailbox())


def adopt_mailbox(channel: str, mailbox: Mailbox) -> Mailbox:
    """Deliver what is sent to ``channel`` in this process to ``mailbox`` (a second name for it, say)."""
    _mailboxes[channel] = mailbox
    return mailbox


def close_mailbox(channel: str) -> None:
    _mailboxes.pop(channel, None)


def local_name() -> str:
    """A new channel name that only this process can send to."""
    return f"{LOCAL_PREFIX}{new_id()}"


def lives_here(channel: str) -> bool:
    return channel in _mailboxes


async def send(layer: BaseChannelLayer, channel: str, message: dict) -> None:
    """Hand ``message`` to its channel's mailbox if the channel lives in this process, else send it through the layer.

    The message is handed over as it is: every sender builds a fresh one and never touches it again.
    """
    mailbox = _mailboxes.get(channel)
    if mailbox is not None:
        mailbox.put(message)
    elif not channel.startswith(LOCAL_PREFIX):
        await layer.send(channel, message)
    # else: a local channel that is closed; its reader is gone, as a layer channel nobody receives on.


class Feed:
    """The one receive in flight on a source (a layer channel, a socket's messages), moving what comes into a mailbox.

    One task for the source's whole life, instead of a task and an
    ``asyncio.wait`` for every message.
    """

    def __init__(self, receive: Callable[[], Awaitable[dict]], mailbox: Mailbox) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(receive, mailbox))

    @staticmethod
    async def _run(receive: Callable[[], Awaitable[dict]], mailbox: Mailbox) -> None:
        try:
            while True:
                mailbox.put(await receive())
        except Exception as error:
            mailbox.fail(error)

    async def close(self) -> None:
        """Cancel the receive: on Redis pub/sub that is what unsubscribes the channel."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
