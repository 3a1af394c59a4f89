"""Daphne's server, offering its WebSocket applications their messages by hand (``asgi_extensions.RECEIVE_INTO``).

Daphne's WebSocket protocol puts each message it receives into the
application's input queue, and the application awaits ``receive`` (the
queue's ``get``) for it: a wake-up of the waiting task, a turn of the loop. The
executor's consumer waits on two sources (its socket and the channel layer),
so it kept a task on each, moving every message into its one mailbox: a second
task and a second turn per executor frame. Here the protocol's queue is fronted
by ``Delivery``, which hands each message to the application's callback once
the application asks for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from daphne.server import Server as DaphneServer

from gemproxy_site.asgi_extensions import RECEIVE_INTO


class Delivery:
    """What Daphne's WebSocket protocol puts messages into: the application's queue, or its callback once given one."""

    __slots__ = ("_deliver", "queue")

    def __init__(self) -> None:
        self.queue: asyncio.Queue | None = None
        self._deliver: Callable[[dict], None] | None = None

    def put_nowait(self, message: dict) -> None:
        if self._deliver is not None:
            self._deliver(message)
        else:
            assert self.queue is not None
            self.queue.put_nowait(message)

    def deliver_to(self, deliver: Callable[[dict], None]) -> None:
        """From now on hand every message to ``deliver``, those already queued first, in order."""
        assert self.queue is not None
        while not self.queue.empty():
            deliver(self.queue.get_nowait())
        self._deliver = deliver


class Server(DaphneServer):
    def create_application(self, protocol, scope):
        if scope.get("type") != "websocket":
            return super().create_application(protocol, scope)
        delivery = Delivery()
        scope["extensions"] = {**scope.get("extensions", {}), RECEIVE_INTO: delivery.deliver_to}
        queue = super().create_application(protocol, scope)
        if queue is None:  # the connection closed meanwhile, as Daphne's own returns
            return None
        delivery.queue = queue
        return delivery
