"""The HTTP channel's socket: what it sets on every client connection, on a real reactor and socket."""

from __future__ import annotations

import socket

from twisted.internet import protocol

from gemproxy_site.http_channel import HttpChannel
from tests.test_same_turn_writes import Rig, rig  # noqa: F401  (the fixture)


def test_every_connection_sends_small_writes_at_once_without_nagle(rig: Rig) -> None:  # noqa: F811
    channels: list[HttpChannel] = []

    def build(addr) -> HttpChannel:
        channels.append(HttpChannel(server=None, timeout=None))
        return channels[-1]

    factory = protocol.Factory()
    factory.buildProtocol = build  # type: ignore[method-assign]
    port = rig.port = rig.reactor.listenTCP(0, factory, interface="127.0.0.1")  # closed by the rig
    client = socket.create_connection(("127.0.0.1", port.getHost().port))
    try:
        rig.run(0.1)

        assert len(channels) == 1
        assert channels[0].transport.getTcpNoDelay()
    finally:
        client.close()
