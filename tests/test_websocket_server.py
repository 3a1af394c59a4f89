"""Daphne's WebSocket messages handed to an application that asks for them (asgi_extensions.RECEIVE_INTO), and
frames sent as autobahn would send them, without its detour (websocket_server.frame_now)."""

from __future__ import annotations

import asyncio
import json

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from channels.db import database_sync_to_async
from daphne import ws_protocol
from twisted.internet.testing import StringTransport

from executors.consumer import ExecutorConsumer
from gemproxy_site.asgi_extensions import RECEIVE_INTO
from gemproxy_site.websocket_server import Delivery, LeanWebSocketProtocol, Server, frame_now
from tests.executor_sockets import hello, new_token

pytestmark = pytest.mark.django_db(transaction=True)


async def test_messages_wait_in_the_queue_until_the_application_takes_them_by_hand_then_come_straight() -> None:
    delivery = Delivery()
    delivery.queue = asyncio.Queue()
    delivery.put_nowait({"n": 1})
    delivery.put_nowait({"n": 2})
    handed: list[dict] = []

    delivery.deliver_to(handed.append)
    delivery.put_nowait({"n": 3})

    assert handed == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert delivery.queue.empty()


async def test_without_a_taker_messages_are_received_as_daphne_gives_them() -> None:
    delivery = Delivery()
    delivery.queue = asyncio.Queue()
    delivery.put_nowait({"n": 1})

    assert await asyncio.wait_for(delivery.queue.get(), 1) == {"n": 1}


async def until(condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within the time")


async def test_the_executor_consumer_takes_its_sockets_frames_by_hand_and_never_awaits_receive() -> None:
    token = await database_sync_to_async(new_token)()
    takers: list = []
    sent: list[dict] = []
    awaited = asyncio.Event()

    async def receive() -> dict:
        awaited.set()
        await asyncio.Event().wait()  # never answers: the consumer must not be waiting here
        raise AssertionError

    async def send(message: dict) -> None:
        sent.append(message)

    def welcomed() -> bool:
        return any(json.loads(message.get("text") or "{}").get("type") == "welcome" for message in sent)

    scope = {
        "type": "websocket",
        "path": "/ws/executor",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "subprotocols": [],
        "extensions": {RECEIVE_INTO: takers.append},
    }
    consumer = asyncio.ensure_future(ExecutorConsumer.as_asgi()(scope, receive, send))
    try:
        await until(lambda: takers)
        deliver = takers[0]
        deliver({"type": "websocket.connect"})
        await until(lambda: sent)
        deliver({"type": "websocket.receive", "text": json.dumps(hello())})
        await until(welcomed)

        assert sent[0]["type"] == "websocket.accept"
        assert not awaited.is_set()
    finally:
        if takers:
            takers[0]({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(consumer, 5)


def open_socket(**options) -> tuple[WebSocketServerProtocol, StringTransport]:
    """An autobahn server protocol past its handshake, writing into a string, with ``options`` set on it."""
    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.state = WebSocketProtocol.STATE_OPEN
    protocol.websocket_version = 13
    for name, value in options.items():
        setattr(protocol, name, value)
    return protocol, transport


def autobahns_bytes(payload: bytes, binary: bool) -> bytes:
    protocol, transport = open_socket()
    protocol.sendMessage(payload, isBinary=binary)
    return transport.value()


# Each length encoding of RFC 6455, 5.2, at its edges.
LENGTHS = [1, 125, 126, 65535, 65536, 300_000]


@pytest.mark.parametrize("length", LENGTHS)
def test_a_binary_message_is_the_frame_autobahn_would_have_sent(length: int) -> None:
    payload = bytes(range(256)) * (length // 256) + bytes(length % 256)
    protocol, _ = open_socket()

    assert frame_now(protocol, {"type": "websocket.send", "bytes": payload}) == autobahns_bytes(payload, True)


@pytest.mark.parametrize("length", LENGTHS)
def test_a_text_message_is_the_frame_autobahn_would_have_sent_in_utf8(length: int) -> None:
    text = ("é" * length)[:length]
    protocol, _ = open_socket()

    frame = frame_now(protocol, {"type": "websocket.send", "text": text})

    assert frame == autobahns_bytes(text.encode("utf8"), False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, {"type": "websocket.close"}),
        ({}, {"type": "websocket.accept"}),
        ({}, {"type": "websocket.send", "bytes": b"x", "text": "x"}),  # Daphne refuses it
        ({}, {"type": "websocket.send", "bytes": b""}),  # Daphne sends nothing
        ({}, {"type": "websocket.send", "text": ""}),
        ({}, {"type": "websocket.send", "bytes": bytearray(b"x")}),
        ({"state": WebSocketProtocol.STATE_CONNECTING}, {"type": "websocket.send", "bytes": b"x"}),  # accepts first
        ({"state": WebSocketProtocol.STATE_CLOSING}, {"type": "websocket.send", "bytes": b"x"}),
        ({"_perMessageCompress": object()}, {"type": "websocket.send", "bytes": b"x"}),
        ({"autoFragmentSize": 4}, {"type": "websocket.send", "bytes": b"12345"}),
        ({"maskServerFrames": True}, {"type": "websocket.send", "bytes": b"x"}),
        ({"maxMessagePayloadSize": 4}, {"type": "websocket.send", "bytes": b"12345"}),  # autobahn raises
    ],
)
def test_anything_autobahn_would_not_send_as_one_plain_frame_at_once_takes_daphnes_path(options, message) -> None:
    protocol, _ = open_socket(**options)

    assert frame_now(protocol, message) is None


def test_a_frame_waits_behind_what_autobahn_has_queued_to_send() -> None:
    protocol, _ = open_socket()
    protocol.send_queue.append((b"queued", False))

    assert frame_now(protocol, {"type": "websocket.send", "bytes": b"x"}) is None


def test_within_the_limits_a_frame_goes_out_even_when_fragmenting_or_limiting_is_set() -> None:
    protocol, _ = open_socket(autoFragmentSize=5, maxMessagePayloadSize=5)

    assert frame_now(protocol, {"type": "websocket.send", "bytes": b"12345"}) == b"\x82\x0512345"


async def test_the_server_writes_the_frame_to_an_open_connection_and_nothing_to_one_that_is_gone() -> None:
    protocol, transport = open_socket()
    server = Server.__new__(Server)  # only its connections are needed
    server.connections = {protocol: {}}

    await server.handle_reply(protocol, {"type": "websocket.send", "bytes": b"hi"})
    assert transport.value() == b"\x82\x02hi"

    server.connections[protocol]["disconnected"] = 1.0
    await server.handle_reply(protocol, {"type": "websocket.send", "bytes": b"again"})
    del server.connections[protocol]
    await server.handle_reply(protocol, {"type": "websocket.send", "bytes": b"and again"})
    assert transport.value() == b"\x82\x02hi"


def masked_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """A client's final frame (RFC 6455, 5.3: masked), payload under 126 bytes."""
    mask = b"\x01\x02\x03\x04"
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked


def lean_socket() -> tuple[LeanWebSocketProtocol, list]:
    """Our protocol past its handshake, its messages collected instead of queued for an application."""
    factory = ws_protocol.WebSocketFactory(None)
    factory.protocol = LeanWebSocketProtocol
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())
    # What autobahn's succeedHandshake sets.
    protocol.state = WebSocketProtocol.STATE_OPEN
    protocol.websocket_version = 13
    protocol.inside_message, protocol.current_frame = False, None
    received: list = []
    protocol.onMessage = lambda payload, binary: received.append((payload, binary))  # type: ignore[method-assign]
    return protocol, received


def test_our_protocol_hands_each_message_over_whole_in_order_however_its_bytes_arrive() -> None:
    protocol, received = lean_socket()
    wire = masked_frame(b"first") + masked_frame("second é".encode(), opcode=0x1) + masked_frame(b"third")

    for start in range(0, len(wire), 3):
        protocol.dataReceived(wire[start : start + 3])

    assert received == [(b"first", True), ("second é".encode(), False), (b"third", True)]
    assert protocol.message_data is None


def test_a_registered_observer_of_messages_is_still_told_of_each() -> None:
    protocol, received = lean_socket()
    observed: list = []
    protocol.on("message", lambda payload, is_binary: observed.append(payload))

    protocol.dataReceived(masked_frame(b"watched"))

    assert received == [(b"watched", True)]
    assert observed == [b"watched"]


def test_the_server_builds_our_protocol_for_every_websocket() -> None:
    server = Server.__new__(Server)

    server.ws_factory = ws_protocol.WebSocketFactory(server)

    assert isinstance(server.ws_factory.buildProtocol(None), LeanWebSocketProtocol)
