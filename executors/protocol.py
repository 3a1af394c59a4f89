"""Executor protocol v1: the frames exchanged over the executor WebSocket.

This module is shared by the gateway's consumer and the headless agent, so it
must not import Django. docs/executor-protocol.md is the normative text.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Callable, Mapping
from typing import Any, Literal, NotRequired, TypedDict, get_args

import orjson

PROTOCOL_VERSION = 1
SUBPROTOCOL = "gemproxy.v1"
# Browsers cannot set headers on a WebSocket; they offer the token as a subprotocol.
TOKEN_SUBPROTOCOL_PREFIX = "gemproxy-token."
WEBSOCKET_PATH = "/ws/executor"

# Raw bytes per body frame. Base64 makes a frame about 4/3 of this, far under
# Daphne's 1 MiB limit on an incoming WebSocket message.
BODY_CHUNK_BYTES = 256 * 1024

# Features an executor may announce in its hello's optional "features" list.
# binary_body: request bodies are sent upstream byte for byte, whatever their
# content type (an older browser executor sent them as text). Tasks whose body
# is a file's bytes go only to executors announcing it.
FEATURE_BINARY_BODY = "binary_body"
# binary_frames: body pieces travel as binary WebSocket messages (a JSON header,
# then the raw bytes) instead of base64 in text frames, in both directions. The
# executor offers it in its hello; the gateway accepts it by listing it in the
# welcome's "features", and only then may either side send binary frames.
FEATURE_BINARY_FRAMES = "binary_frames"
FEATURES: frozenset[str] = frozenset({FEATURE_BINARY_BODY, FEATURE_BINARY_FRAMES})
MAX_FEATURES = 32

# WebSocket close codes the gateway uses.
CLOSE_PROTOCOL_ERROR = 4002
CLOSE_HEARTBEAT_MISSED = 4003
CLOSE_ACCOUNT_DISABLED = 4004
CLOSE_TOKEN_REPLACED = 4005

# Error codes an executor reports in an "error" frame.
ErrorCode = Literal["upstream_unreachable", "bad_task", "cancelled", "internal"]
ERROR_CODES: frozenset[str] = frozenset(get_args(ErrorCode))

# What the gateway accepts from an executor (docs/executor-protocol.md, "Validation").
MAX_ID_LENGTH = 128
MAX_TYPE_LENGTH = 64
MAX_TEXT_LENGTH = 200  # hello's label and software, a pong's nonce
MAX_MESSAGE_LENGTH = 2000
MAX_HEADERS = 100
MAX_HEADER_NAME_LENGTH = 256
MAX_HEADER_VALUE_LENGTH = 8192
MAX_COUNT = 2**53  # seq and chunks: what JavaScript counts exactly
# A body piece is at most BODY_CHUNK_BYTES raw, so its base64 is at most this long.
MAX_DATA_LENGTH = 4 * -(-BODY_CHUNK_BYTES // 3)

# A binary frame: the header's length (4 bytes, big-endian), the header (the
# frame's JSON object without "data"), then "data"'s raw bytes.
_HEADER_LENGTH = struct.Struct(">I")
# The frame types that carry a body piece, the only ones that may be binary.
BINARY_TYPES: frozenset[str] = frozenset({"response_start", "response_body", "request_body"})


# Executor -> gateway


class Hello(TypedDict):
    type: Literal["hello"]
    protocol: int
    executor_id: str
    label: str
    software: str
    max_concurrency: int
    features: NotRequired[list[str]]


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
    data: NotRequired[bytes]  # base64 in a text frame, raw in a binary one
    end: NotRequired[bool]


class ResponseBody(TypedDict):
    type: Literal["response_body"]
    id: str
    seq: int
    data: bytes  # base64 in a text frame, raw in a binary one


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
    # The hello's features the gateway takes up; binary_frames only when listed here.
    features: NotRequired[list[str]]


class Request(TypedDict):
    type: Literal["request"]
    id: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body_chunks: int
    # The gateway's id for the client's call, to log with the attempt: visible ASCII, at most 128.
    request_id: NotRequired[str]


class RequestBody(TypedDict):
    type: Literal["request_body"]
    id: str
    seq: int
    data: bytes  # base64 in a text frame, raw in a binary one


class Cancel(TypedDict):
    type: Literal["cancel"]
    id: str


class Ping(TypedDict):
    type: Literal["ping"]
    nonce: str


ExecutorFrame = Hello | Pong | Ack | ResponseStart | ResponseBody | ResponseEnd | Error


def dumps(frame: Mapping[str, Any]) -> str:
    """A frame without bytes as compact JSON text."""
    try:
        return orjson.dumps(frame).decode()
    except TypeError:
        # orjson refuses lone surrogates; json escapes them as before, and the receiver decides.
        return json.dumps(frame, separators=(",", ":"))


def loads(text: str | bytes) -> dict:
    """A text frame's JSON object; ValueError if it is none (orjson also refuses NaN and deep nesting)."""
    frame = orjson.loads(text)
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise ValueError("a frame is a JSON object with a string 'type'")
    return frame


def text_frame(frame: Mapping[str, Any]) -> str:
    """A frame as a text message: its "data" bytes, if any, as base64."""
    if "data" in frame:
        frame = {**frame, "data": encode_body(frame["data"])}
    return dumps(frame)


def binary_frame(frame: Mapping[str, Any]) -> bytes:
    """A frame carrying "data" (bytes) as a binary message: length, JSON header, raw bytes."""
    header = orjson.dumps({name: value for name, value in frame.items() if name != "data"})
    return b"".join((_HEADER_LENGTH.pack(len(header)), header, frame["data"]))


def split_binary_frame(message: bytes) -> tuple[dict, bytes]:
    """A binary message's header (a JSON object with a string type) and its bytes; ValueError otherwise."""
    if len(message) < _HEADER_LENGTH.size:
        raise ValueError("a binary frame shorter than its header length")
    (length,) = _HEADER_LENGTH.unpack_from(message)
    end = _HEADER_LENGTH.size + length
    if end > len(message):
        raise ValueError(f"a binary frame's header length {length} runs past its {len(message)} bytes")
    header = loads(memoryview(message)[_HEADER_LENGTH.size : end])
    if "data" in header:
        raise ValueError("a binary frame's header must not hold data: its bytes follow the header")
    return header, message[end:]


def encode_body(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_body(data: str) -> bytes:
    """Strict standard base64: anything else raises ``binascii.Error`` (a ``ValueError``)."""
    return base64.b64decode(data, validate=True)


def split_body(body: bytes, size: int = BODY_CHUNK_BYTES) -> list[bytes]:
    """The body cut into frame-sized pieces; empty for an empty body."""
    if len(body) <= size:  # most bodies: one piece, not copied
        return [body] if body else []
    return [body[i : i + size] for i in range(0, len(body), size)]


class ProtocolViolation(ValueError):
    """A frame an executor sent that protocol v1 does not allow; its connection ends with 4002."""


# Visible ASCII: what attempt ids (hex) and executor ids (UUIDs) are made of.
_ID = re.compile(r"[!-~]+")
_TYPE = re.compile(r"[a-z][a-z0-9_.]*")
# RFC 9110 token characters.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# The same characters as bytes, for checking many names at once (_all_plain).
_TOKEN_BYTES = bytes(code for code in range(128) if _HEADER_NAME.fullmatch(chr(code)))
# Control characters (tab aside) could split a header or forge a log line; lone
# surrogates (JSON's "\ud800") cannot be encoded, so the channel layer would fail on them.
_UNSAFE_TEXT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
# An error message may span lines, but never carry a NUL or a lone surrogate.
_UNSAFE_MESSAGE = re.compile(r"[\x00\ud800-\udfff]")


def error_message(text: str) -> str:
    """``text`` as an error frame's message the gateway accepts: cut, without NUL or lone surrogates."""
    return _UNSAFE_MESSAGE.sub("\ufffd", text[:MAX_MESSAGE_LENGTH])


def _field(frame: dict, name: str, *, required: bool = True) -> object:
    if name not in frame and required:
        raise ProtocolViolation(f"{frame['type']} without {name}")
    return frame.get(name)


def _id(value: object, what: str = "id") -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH or not _ID.fullmatch(value):
        raise ProtocolViolation(f"{what} must be 1 to {MAX_ID_LENGTH} visible ASCII characters")
    return value


def _text(value: object, what: str, limit: int = MAX_TEXT_LENGTH, unsafe: re.Pattern = _UNSAFE_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit or unsafe.search(value):
        raise ProtocolViolation(f"{what} must be a string of at most {limit} printable characters")
    return value


def _count(value: object, what: str, lowest: int = 0, highest: int = MAX_COUNT) -> int:
    # bool is an int in Python, never in the protocol.
    if type(value) is not int or not lowest <= value <= highest:
        raise ProtocolViolation(f"{what} must be an integer from {lowest} to {highest}")
    return value


def _data(value: object) -> bytes:
    """A body piece's bytes: decoded here, where it is checked, so nothing after decodes it again."""
    if isinstance(value, bytes):  # a binary frame's payload; JSON cannot produce bytes
        data = value
    elif not isinstance(value, str) or len(value) > MAX_DATA_LENGTH:
        raise ProtocolViolation(f"data must be base64 of at most {BODY_CHUNK_BYTES} bytes")
    else:
        try:
            data = decode_body(value)
        except ValueError:  # binascii.Error, or a non-ASCII string
            raise ProtocolViolation("data is not valid base64") from None
    if len(data) > BODY_CHUNK_BYTES:
        raise ProtocolViolation(f"data must be at most {BODY_CHUNK_BYTES} bytes")
    return data


def _headers(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > MAX_HEADERS:
        raise ProtocolViolation(f"headers must be an object of at most {MAX_HEADERS} names")
    if _all_plain(value):
        return {name.lower(): text for name, text in value.items()}
    headers: dict[str, str] = {}
    for name, text in value.items():
        if len(name) > MAX_HEADER_NAME_LENGTH or not _HEADER_NAME.fullmatch(name):
            raise ProtocolViolation(f"header name {name[:40]!r} is not an HTTP token")
        headers[name.lower()] = _text(text, f"header {name[:40]!r}", MAX_HEADER_VALUE_LENGTH)
    return headers


def _all_plain(headers: dict) -> bool:
    """Whether every name is a token and every value printable ASCII, within their lengths: checked at once.

    One by one, a usual answer's eight headers cost two regexes each. Here the
    names joined must be ASCII of nothing but token characters (none empty), and
    the values joined ASCII that ``isprintable`` holds no control character in (a
    tab is not printable: it takes the long way, which allows it). Joined names
    and values within one name's and one value's limit are each within it too.
    Anything else is judged one by one, with its own refusal.
    """
    try:
        values = "".join(headers.values())
        names = "".join(headers).encode("ascii")
    except (TypeError, UnicodeEncodeError):  # a value that is not text, a name that is not ASCII
        return False
    return (
        len(names) <= MAX_HEADER_NAME_LENGTH
        and len(values) <= MAX_HEADER_VALUE_LENGTH
        and "" not in headers
        and not names.translate(None, _TOKEN_BYTES)
        and values.isascii()
        and values.isprintable()
    )


def _features(value: object) -> list[str]:
    """The announced features this gateway knows, in order, once each; unknown names are a later version's."""
    if not isinstance(value, list) or len(value) > MAX_FEATURES:
        raise ProtocolViolation(f"features must be a list of at most {MAX_FEATURES} names")
    known: list[str] = []
    for name in value:
        if not isinstance(name, str) or len(name) > MAX_TYPE_LENGTH or not _TYPE.fullmatch(name):
            raise ProtocolViolation("a feature is a short lower-case name")
        if name in FEATURES and name not in known:
            known.append(name)
    return known


def _hello(frame: dict) -> Hello:
    if _field(frame, "protocol") != PROTOCOL_VERSION or type(frame["protocol"]) is not int:
        raise ProtocolViolation(f"this gateway speaks protocol {PROTOCOL_VERSION} only")
    hello = Hello(
        type="hello",
        protocol=PROTOCOL_VERSION,
        executor_id=_id(_field(frame, "executor_id"), "executor_id"),
        label=_text(frame.get("label", ""), "label"),
        software=_text(frame.get("software", ""), "software"),
        max_concurrency=_count(_field(frame, "max_concurrency"), "max_concurrency", lowest=1),
    )
    if "features" in frame:
        hello["features"] = _features(frame["features"])
    return hello


def _response_start(frame: dict) -> ResponseStart:
    start = ResponseStart(
        type="response_start",
        id=_id(_field(frame, "id")),
        status=_count(_field(frame, "status"), "status", lowest=100, highest=599),
        headers=_headers(_field(frame, "headers")),
    )
    if "data" in frame:
        start["data"] = _data(frame["data"])
    if "end" in frame:
        if not isinstance(frame["end"], bool):
            raise ProtocolViolation("end must be true or false")
        start["end"] = frame["end"]
    return start


def _error(frame: dict) -> Error:
    code = _field(frame, "code")
    if not isinstance(code, str) or code not in ERROR_CODES:
        raise ProtocolViolation(f"error code must be one of {sorted(ERROR_CODES)}")
    message = _text(_field(frame, "message"), "message", MAX_MESSAGE_LENGTH, _UNSAFE_MESSAGE)
    return Error(type="error", id=_id(_field(frame, "id")), code=code, message=message)  # type: ignore[typeddict-item]


_PARSERS: dict[str, Callable[[dict], ExecutorFrame]] = {
    "hello": _hello,
    "pong": lambda frame: Pong(type="pong", nonce=_text(_field(frame, "nonce"), "nonce")),
    "ack": lambda frame: Ack(type="ack", id=_id(_field(frame, "id"))),
    "response_start": _response_start,
    "response_body": lambda frame: ResponseBody(
        type="response_body",
        id=_id(_field(frame, "id")),
        seq=_count(_field(frame, "seq"), "seq"),
        data=_data(_field(frame, "data")),
    ),
    "response_end": lambda frame: ResponseEnd(
        type="response_end", id=_id(_field(frame, "id")), chunks=_count(_field(frame, "chunks"), "chunks")
    ),
    "error": _error,
}


def _binary(message: bytes) -> dict:
    """A binary message as the frame it stands for: its header, with its bytes as data."""
    try:
        frame, data = split_binary_frame(message)
    except ValueError as error:  # orjson's errors, truncation and lengths alike
        raise ProtocolViolation(f"not a binary frame: {str(error)[:80]}") from None
    kind = frame["type"]
    if kind in _PARSERS and kind not in BINARY_TYPES:
        raise ProtocolViolation(f"a {str(kind)[:40]} frame carries no body, so it is text")
    frame["data"] = data
    return frame


def parse_executor_frame(message: str | bytes) -> ExecutorFrame | None:
    """An executor's frame, text (JSON) or binary (see binary_frame), checked field by field against protocol v1.

    Returns a fresh frame holding only the fields the protocol defines (header
    names lower-cased, data as bytes), or None for a well-formed frame of a type
    this version does not know, which a later version may send. Raises
    ProtocolViolation for anything else; a frame of the gateway's own direction
    counts as unknown. Whether binary frames were negotiated is the caller's to check.
    """
    if isinstance(message, bytes):
        frame = _binary(message)
    else:
        try:
            # orjson refuses NaN, Infinity, nesting past 1024 levels and lone surrogates, all as ValueError.
            frame = orjson.loads(message)
        except ValueError as error:  # not JSON, or an integer too large for a double
            raise ProtocolViolation(f"not JSON: {str(error)[:80]}") from None
        if not isinstance(frame, dict):
            raise ProtocolViolation("a frame is a JSON object")
    kind = frame.get("type")
    if not isinstance(kind, str) or len(kind) > MAX_TYPE_LENGTH or not _TYPE.fullmatch(kind):
        raise ProtocolViolation(f"type must be a short lower-case name, not {str(kind)[:40]!r}")
    parse = _PARSERS.get(kind)
    if parse is None:
        if "id" in frame:
            _id(frame["id"])
        return None
    return parse(frame)
