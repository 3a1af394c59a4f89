"""The gateway's reactor (gemproxy_site.reactor): writes leave in the turn they are made, and nothing else changes.

Each test runs a real SameTurnWriteReactor on its own uvloop loop (as
gemproxy_site.serve runs it), with a Twisted server on a real socket and a
plain socket as the client.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest
import uvloop
from twisted.internet import protocol

from gemproxy_site.reactor import SameTurnWriteReactor


class Server(protocol.Protocol):
    def __init__(self, on_connect: Callable[[Server], None]) -> None:
        self.on_connect = on_connect
        self.lost = asyncio.get_event_loop().create_future()

    def connectionMade(self) -> None:
        self.on_connect(self)

    def connectionLost(self, reason=None) -> None:
        if not self.lost.done():
            self.lost.set_result(reason)


class Rig:
    """A reactor on a loop, a listening port, and a record of every fd the loop was asked to watch for writing."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.watched_for_writing: list[int] = []
        add_writer = self.loop.add_writer

        def recording_add_writer(fd, *args):
            self.watched_for_writing.append(fd)
            return add_writer(fd, *args)

        self.loop.add_writer = recording_add_writer  # type: ignore[method-assign]
        self.reactor = SameTurnWriteReactor(self.loop)
        self.servers: list[Server] = []

    def listen(self, on_connect: Callable[[Server], None], kind: type[Server] = Server) -> int:
        factory = protocol.Factory.forProtocol(lambda: self._server(kind(on_connect)))
        self.port = self.reactor.listenTCP(0, factory, interface="127.0.0.1")
        return self.port.getHost().port

    def _server(self, server: Server) -> Server:
        self.servers.append(server)
        return server

    def run(self, seconds: float = 0.2) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def close(self) -> None:
        self.port.stopListening()
        self.run(0.05)
        self.loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def rig() -> Iterator[Rig]:
    made = Rig()
    yield made
    made.close()


def connect(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port))
    client.settimeout(5)
    return client


def read_all(client: socket.socket) -> bytes:
    pieces = []
    while piece := client.recv(65536):
        pieces.append(piece)
    return b"".join(pieces)


def test_an_answer_written_in_pieces_arrives_whole_without_waiting_for_the_socket_to_be_writable(rig: Rig) -> None:
    def answer(server: Server) -> None:
        server.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        server.transport.write(b"hello")

    client = connect(rig.listen(answer))
    rig.run()
    assert client.recv(65536) == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    assert rig.watched_for_writing == []  # sent in the same turn: no add_writer, no epoll_ctl
    assert rig.reactor.getWriters() == []
    client.close()


def test_what_a_full_socket_does_not_take_waits_for_the_client_and_arrives_in_order(rig: Rig) -> None:
    payload = bytes(range(256)) * (32 * 1024)  # 8 MiB: far more than the socket buffers hold

    def answer(server: Server) -> None:
        server.transport.write(payload)
        server.transport.loseConnection()

    client = connect(rig.listen(answer))
    rig.run(0.1)
    # The client has read nothing: the rest waits, registered for writability as Twisted would.
    assert len(rig.reactor.getWriters()) == 1
    assert rig.watched_for_writing

    received = rig.loop.run_in_executor(None, read_all, client)  # the client reads at last
    rig.loop.run_until_complete(asyncio.wait_for(rig.servers[0].lost, 10))
    assert rig.loop.run_until_complete(asyncio.wait_for(received, 10)) == payload  # all of it, in order, then closed
    assert rig.reactor.getWriters() == []
    client.close()


def test_a_connection_closed_after_its_last_write_sends_everything_first(rig: Rig) -> None:
    def answer(server: Server) -> None:
        server.transport.write(b"last words")
        server.transport.loseConnection()

    client = connect(rig.listen(answer))
    rig.run()
    assert read_all(client) == b"last words"
    assert rig.servers[0].lost.done()
    client.close()


def test_writing_to_a_client_that_is_gone_loses_the_connection_and_nothing_else(rig: Rig) -> None:
    def answer(server: Server) -> None:
        pass

    client = connect(rig.listen(answer))
    rig.run(0.05)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()  # a reset: the next send fails
    rig.run(0.05)
    server = rig.servers[0]
    if not server.lost.done():  # the reset was not read yet: the write finds it
        server.transport.write(b"x" * 100_000)
        server.transport.write(b"y")
        rig.loop.run_until_complete(asyncio.wait_for(server.lost, 5))
    assert rig.reactor.getWriters() == []


def test_connections_that_write_in_one_turn_are_each_flushed_once(rig: Rig) -> None:
    def answer(server: Server) -> None:
        server.transport.write(b"a")

    port = rig.listen(answer)
    clients = [connect(port) for _ in range(3)]
    rig.run()
    for client in clients:
        assert client.recv(10) == b"a"
    for server in rig.servers:
        server.transport.write(b"b")
        server.transport.write(b"c")
    assert len(rig.reactor.getWriters()) == 3  # pending until the turn ends
    rig.run(0.05)
    assert rig.reactor.getWriters() == []
    for client in clients:
        assert client.recv(10) == b"bc"
        client.close()
    assert rig.watched_for_writing == []


def test_a_protocol_that_raises_while_reading_loses_its_connection_and_the_reactor_serves_on(rig: Rig) -> None:
    class Raising(Server):
        def dataReceived(self, data: bytes) -> None:
            if data == b"boom":
                raise RuntimeError("a bug in a protocol")
            self.transport.write(data.upper())

    port = rig.listen(lambda server: None, Raising)
    failing, healthy = connect(port), connect(port)
    rig.run(0.05)
    failing.sendall(b"boom")
    healthy.sendall(b"fine")
    rig.run()
    assert failing.recv(10) == b""  # dropped, as Twisted drops it
    assert healthy.recv(10) == b"FINE"
    failing.close()
    healthy.close()


def test_what_was_written_leaves_before_what_has_arrived_meanwhile_is_read(rig: Rig) -> None:
    # A stream's first piece, written by the relay, must not wait while the executor's next frames are read.
    sent_when_read: list[bytes] = []

    class Reading(Server):
        def dataReceived(self, data: bytes) -> None:
            try:
                sent_when_read.append(writer_client.recv(100))
            except BlockingIOError:
                sent_when_read.append(b"")

    port = rig.listen(lambda server: None, kind=Reading)
    writer_client, reader_client = connect(port), connect(port)
    rig.run(0.05)
    writer = rig.servers[0]
    writer_client.setblocking(False)  # what has not arrived is not waited for
    reader_client.sendall(b"the next frame")  # waiting in the socket when the loop turns next
    rig.loop.call_soon(writer.transport.write, b"the first piece")
    rig.run(0.05)

    assert sent_when_read == [b"the first piece"]
    writer_client.close()
    reader_client.close()
