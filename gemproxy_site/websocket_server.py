"""Daphne's server: WebSocket messages handed to their application by hand, and frames sent without autobahn's detour.

Daphne's WebSocket protocol puts each message it receives into the
application's input queue, and the application awaits ``receive`` (the
queue's ``get``) for it: a wake-up of the waiting task, a turn of the loop. The
executor's consumer waits on two sources (its socket and the channel layer),
so it kept a task on each, moving every message into its one mailbox: a second
task and a second turn per executor frame. Here the protocol's queue is fronted
by ``Delivery``, which hands each message to the application's callback once
the application asks for it.

Sending, Daphne's reply path goes through autobahn's ``sendMessage``: type
assertions, traffic statistics, a compression check, ``sendFrame`` building the
header bit by bit, ``sendData``, and a debug line whose arguments (``hltype`` of
a bound method: ``inspect`` and string work) are computed whether or not debug
is on. Measured at one client on the 2-core VM, that was about a tenth of the
gateway's time between a client's request and the executor's frame leaving.
``Server.handle_reply`` writes the frame itself (``frame_now``) when autobahn
would have sent exactly those bytes at once: an open connection, no compression,
no fragmentation or masking asked for, nothing queued before it, within the
message size limit. Every other message takes Daphne's path as before.

Receiving, autobahn computes the same kind of debug line's arguments for every
read, and ends every message by firing a "message" event for observers (a
Deferred made and called back) that nothing in Daphne or gemproxy registers.
``LeanWebSocketProtocol`` skips both while nothing listens.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol
from daphne import ws_protocol
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


class LeanWebSocketProtocol(ws_protocol.WebSocketProtocol):
    """Daphne's WebSocket protocol, less autobahn's per-read debug arguments and unobserved per-message event."""

    def dataReceived(self, data: bytes) -> None:
        self._dataReceived(data)  # autobahn's, less the debug line

    def onMessageEnd(self) -> None:
        listeners = self._listeners
        if self.failedByMe or self.trackedTimings or self._parent is not None or (listeners and "message" in listeners):
            super().onMessageEnd()
            return
        # Autobahn's, less firing the "message" event that nothing observes.
        state: Any = self  # autobahn's message state is set at run time: unknown to its type
        self._onMessage(b"".join(state.message_data), state.message_is_binary)
        state.message_data = None


class Server(DaphneServer):
    @property
    def ws_factory(self) -> ws_protocol.WebSocketFactory:
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory: ws_protocol.WebSocketFactory) -> None:
        # Daphne makes its factory as it starts to run: from then on it builds our protocol.
        factory.protocol = LeanWebSocketProtocol
        self._ws_factory = factory

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

    async def handle_reply(self, protocol, message) -> None:
        frame = frame_now(protocol, message)
        if frame is None:
            await super().handle_reply(protocol, message)
            return
        connection = self.connections.get(protocol)
        if connection is not None and not connection.get("disconnected", None):  # as Daphne: else it goes nowhere
            protocol.transport.write(frame)


_FIN, _TEXT, _BINARY = 0x80, 0x1, 0x2


def frame_now(protocol, message: dict) -> bytes | None:
    """The frame autobahn would send at once for a ``websocket.send``, header and payload; None for anything else.

    A server's frames are not masked (RFC 6455, 5.1): one final frame is the
    FIN bit and the opcode, the payload length in 7, 16 or 64 bits, the payload.
    """
    if message.get("type") != "websocket.send" or not isinstance(protocol, WebSocketProtocol):
        return None
    data, text = message.get("bytes"), message.get("text")
    if data and not text and type(data) is bytes:
        payload, opcode = data, _BINARY
    elif text and not data and type(text) is str:
        payload, opcode = text.encode("utf8"), _TEXT
    else:
        return None  # both, neither or the wrong type: Daphne's own answer to it
    length = len(payload)
    options: Any = protocol  # set at run time by the factory (setProtocolOptions): unknown to its type
    if (
        protocol.state != WebSocketProtocol.STATE_OPEN
        or protocol._perMessageCompress is not None
        or 0 < options.autoFragmentSize < length
        or options.maskServerFrames
        or protocol.send_queue
        or 0 < options.maxMessagePayloadSize < length
    ):
        return None
    if length < 126:
        head = bytes((_FIN | opcode, length))
    elif length < 1 << 16:
        head = struct.pack("!BBH", _FIN | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", _FIN | opcode, 127, length)
    return head + payload
