"""Executor protocol v1: the frames exchanged over the executor WebSocket.

This module is shared by the gateway's consumer and the headless agent, so it
must not import Django. docs/executor-protocol.md is the normative text.
"""

from __future__ import annotations

import base64
import json
from typing import Literal, NotRequired, TypedDict

PROTOCOL_VERSION = 1
SUBPROTOCOL = "gemproxy.v1"
# Browsers cannot set headers on a WebSocket; they offer the token as a subprotocol.
TOKEN_SUBPROTOCOL_PREFIX = "gemproxy-token."
WEBSOCKET_PATH = "/ws/executor"

# Raw bytes per body frame. Base64 makes a frame about 4/3 of this, far under
# Daphne's 1 MiB limit on an incoming WebSocket message.
BODY_CHUNK_BYTES = 256 * 1024

# WebSocket close codes the gateway uses.
CLOSE_PROTOCOL_ERROR = 4002
CLOSE_HEARTBEAT_MISSED = 4003
CLOSE_ACCOUNT_DISABLED = 4004

# Error codes an executor reports in an "error" frame.
ErrorCode = Literal["upstream_unreachable", "bad_task", "cancelled", "internal"]


# Executor -> gateway


class Hello(TypedDict):
    type: Literal["hello"]
    protocol: int
    executor_id: str
    label: str
    software: str
    max_concurrency: int


class Ack(TypedDict):
    type: Literal["ack"]
    id: str


class ResponseStart(TypedDict):
    type: Literal["response_start"]
    id: str
    status: int
    headers: dict[str, str]
    # A body that fits one frame may come whole with its head: then "end" is
    # true and no response_body or response_end follows.
    data: NotRequired[str]  # base64
    end: NotRequired[bool]


class ResponseBody(TypedDict):
    type: Literal["response_body"]
    id: str
    seq: int
    data: str  # base64


class ResponseEnd(TypedDict):
    type: Literal["response_end"]
    id: str
    chunks: int


class Error(TypedDict):
    type: Literal["error"]
    id: str
    code: ErrorCode
    message: str


class Pong(TypedDict):
    type: Literal["pong"]
    nonce: str


# Gateway -> executor


class Welcome(TypedDict):
    type: Literal["welcome"]
    protocol: int
    executor_id: str
    account: str
    heartbeat_interval: float
    heartbeat_timeout: float


class Request(TypedDict):
    type: Literal["request"]
    id: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body_chunks: int


class RequestBody(TypedDict):
    type: Literal["request_body"]
    id: str
    seq: int
    data: str  # base64


class Cancel(TypedDict):
    type: Literal["cancel"]
    id: str


class Ping(TypedDict):
    type: Literal["ping"]
    nonce: str


def dumps(frame: dict) -> str:
    return json.dumps(frame, separators=(",", ":"))


def loads(text: str | bytes) -> dict:
    frame = json.loads(text)
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise ValueError("a frame is a JSON object with a string 'type'")
    return frame


def encode_body(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_body(data: str) -> bytes:
    return base64.b64decode(data)


def split_body(body: bytes, size: int = BODY_CHUNK_BYTES) -> list[bytes]:
    """The body cut into frame-sized pieces; empty for an empty body."""
    return [body[i : i + size] for i in range(0, len(body), size)]
