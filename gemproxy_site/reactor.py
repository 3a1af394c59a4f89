"""Twisted's asyncio reactor, sending a connection's writes in the same turn of the loop.

Twisted's TCP transport buffers each ``write`` and registers the socket for
writability (``add_writer``: an ``epoll_ctl``); the send happens on the loop's
next turn, and once the buffer is empty the registration is removed again (a
second ``epoll_ctl``). On the relay path every answer, and every frame to an
executor, paid that: two system calls, one more turn of the loop, and
Twisted's bookkeeping around each, per write.

Here a connection that asks to write is flushed by a callback at the end of
the current turn instead, once for all it wrote in that turn (Daphne writes a
response's head and body separately: they leave in one ``send``), or earlier,
before the loop reads what arrived on any connection in the meantime. The send is
Twisted's own ``doWrite``, so what the transport does with a short write, a
lost connection, a half-close or a producer is unchanged. Only what the socket
did not take is left to the usual registration, which then waits for the
client as before: back-pressure is untouched. The write itself still never
sends from inside the caller's code, so a protocol never sees its connection
lost in the middle of its own ``write``.

A TCP connection's read and write callbacks also go straight to the reactor's
``_readOrWrite``, which already logs whatever they raise, without
``callWithLogger``'s copy of Twisted's log context around each event (the
"system" of Twisted's own log lines; gemproxy logs through ``logging``, whose
lines never carry it).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from twisted.internet import tcp
from twisted.internet.asyncioreactor import AsyncioSelectorReactor


class SameTurnWriteReactor(AsyncioSelectorReactor):
    def __init__(self, eventloop: asyncio.AbstractEventLoop | None = None) -> None:
        # Connections that wrote in this turn, in the order they first did.
        self._to_flush: dict[tcp.Connection, None] = {}
        super().__init__(eventloop)

    def addReader(self, reader) -> None:
        if not isinstance(reader, tcp.Connection) or reader in self._readers:
            super().addReader(reader)
            return
        fd = reader.fileno()
        self._asyncioEventloop.add_reader(fd, self._readOrWrite, reader, True)
        self._readers[reader] = fd  # type: ignore[index]  # Twisted annotates the keys as classes; they are instances

    def addWriter(self, writer) -> None:
        if not isinstance(writer, tcp.Connection) or writer in self._writers:
            super().addWriter(writer)
            return
        if not self._to_flush:
            self._asyncioEventloop.call_soon(self._flush)
        self._to_flush[writer] = None

    def _readOrWrite(self, selectable, read) -> None:
        # What the last turn's callbacks wrote leaves before what arrived meanwhile is read:
        # the loop polls for input before it runs the callback that flushes, and a stream's
        # first piece would otherwise wait while the executor's next frames are read.
        if read and self._to_flush:
            self._flush()
        super()._readOrWrite(selectable, read)

    def _wait_until_writable(self, connection: tcp.Connection) -> None:
        fd = connection.fileno()
        self._asyncioEventloop.add_writer(fd, self._readOrWrite, connection, False)
        self._writers[connection] = fd  # type: ignore[index]  # as in addReader

    def removeWriter(self, writer) -> None:
        self._to_flush.pop(writer, None)
        super().removeWriter(writer)

    def getWriters(self) -> list:
        return [*super().getWriters(), *self._to_flush]

    def removeAll(self) -> list:
        pending = list(self._to_flush)
        self._to_flush.clear()
        return super().removeAll() + pending

    def _flush(self) -> None:
        to_flush, self._to_flush = self._to_flush, {}
        for connection in to_flush:
            # What the writable callback would have done, one turn later.
            self._readOrWrite(connection, False)
            if connection.connected and (connection.dataBuffer or connection._tempDataBuffer):
                self._wait_until_writable(connection)  # the socket is full


def install() -> SameTurnWriteReactor:
    """Install it as Twisted's reactor, on a new event loop, as Daphne does with Twisted's own.

    Must run before ``daphne.server`` is imported, which then keeps this
    reactor (it is an asyncio one) instead of installing its own.
    """
    from twisted.internet.main import installReactor

    loop = asyncio.new_event_loop()
    if "ASGI_THREADS" in os.environ:  # as daphne.server does for its loop
        loop.set_default_executor(ThreadPoolExecutor(max_workers=int(os.environ["ASGI_THREADS"])))
    reactor = SameTurnWriteReactor(loop)
    installReactor(reactor)
    return reactor
