"""Hostile frames on a real gateway's executor socket, where our server hands them to the consumer as they arrive.

Each closes that one socket with the protocol's code; the gateway serves on,
and a well-behaved executor is welcomed after them.
"""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from executors import protocol
from tests.e2e.harness import Deployment, Gateway

HELLO = {"type": "hello", "protocol": 1, "executor_id": "hostile", "label": "", "software": "t/1", "max_concurrency": 1}


def socket_to(gateway: Gateway, token: str) -> ClientConnection:
    url = gateway.url.replace("http", "ws", 1) + "/ws/executor"
    return connect(url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None, open_timeout=10)


def close_code_after(socket_: ClientConnection, *messages: str | bytes) -> int | str:
    """The code the gateway closed the socket with after ``messages``; "dropped" if it closed without one."""
    with socket_:
        try:
            for message in messages:
                socket_.send(message)
            while True:
                socket_.recv(timeout=10)  # a welcome or a ping, until the gateway closes
        except ConnectionClosed:
            pass
        except TimeoutError:
            raise AssertionError("the gateway kept the socket open") from None
    return socket_.protocol.close_rcvd.code if socket_.protocol.close_rcvd else "dropped"


CASES = {
    "binary before hello": (b"\x00\x01garbage",),
    "not JSON": ("{not json",),
    "NUL in the hello": (json.dumps({**HELLO, "label": "a\x00b"}),),
    "an id of 10,000 characters": (
        json.dumps(HELLO),
        json.dumps({"type": "response_start", "id": "x" * 10_000, "status": 200, "headers": {}}),
    ),
}


@pytest.fixture(scope="module")
def hostile_gateway(deployment: Deployment) -> Gateway:
    return deployment.start_gateway("gw-hostile-socket")


@pytest.mark.parametrize("messages", CASES.values(), ids=CASES.keys())
def test_a_hostile_frame_closes_its_socket_with_the_protocols_code(
    hostile_gateway: Gateway, deployment: Deployment, messages: tuple
) -> None:
    token = deployment.executor_token("hostile@example.com")

    assert close_code_after(socket_to(hostile_gateway, token), *messages) == protocol.CLOSE_PROTOCOL_ERROR


def test_frames_the_protocol_drops_by_design_leave_the_socket_serving(
    hostile_gateway: Gateway, deployment: Deployment
) -> None:
    token = deployment.executor_token("late@example.com")
    with socket_to(hostile_gateway, token) as socket_:
        socket_.send(json.dumps(HELLO))
        assert json.loads(socket_.recv(timeout=10))["type"] == "welcome"
        socket_.send(json.dumps(HELLO))  # hello again
        socket_.send(json.dumps({"type": "response_body", "id": "overandgone", "seq": 3, "data": "b2s="}))  # late
        socket_.send(json.dumps({"type": "from_a_later_version", "x": 1}))

        assert socket_.ping().wait(10)  # still open and answering
        assert hostile_gateway.health()["executors"] >= 1


def test_a_frame_over_the_size_limit_closes_the_socket_and_the_gateway_welcomes_the_next(
    hostile_gateway: Gateway, deployment: Deployment
) -> None:
    token = deployment.executor_token("huge@example.com")

    code = close_code_after(socket_to(hostile_gateway, token), json.dumps(HELLO), "x" * (3 * 1024 * 1024))

    assert code == "dropped"  # autobahn drops a message over Daphne's limit before any of it is parsed
    with socket_to(hostile_gateway, token) as socket_:
        socket_.send(json.dumps(HELLO))
        assert json.loads(socket_.recv(timeout=10))["type"] == "welcome"
    assert hostile_gateway.health()["status"] in ("ok", "no_executors")
