"""The headless executor: performs the gateway's tasks against a Gemini upstream.

    GEMPROXY_EXECUTOR_TOKEN=gpe_... GEMINI_API_KEY=... \\
    python -m executors.agent --server https://gateway.example \\
        [--upstream URL] [--concurrency N] [--label LABEL]

The secrets come from the environment or from files (--token-file,
--upstream-key-file); --token and --upstream-key work too, but a flag is
visible to every user of the machine in `ps`. It speaks protocol v1
(docs/executor-protocol.md) over one WebSocket, reconnects forever, and needs
nothing from this repository but executors.protocol and executors.task_checks:
no Django, so it runs anywhere Python and aiohttp do.
aiohttp serves both the WebSocket and the upstream calls because it costs far
less CPU per request than the alternatives we measured.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from executors import protocol, task_checks
from executors.task_checks import BadTask
from gemproxy_site.log_format import use_json_logs

__version__ = "1.0"
SOFTWARE = f"gemproxy-agent/{__version__}"
DEFAULT_UPSTREAM = "https://generativelanguage.googleapis.com"
DEFAULT_CONCURRENCY = 8
# The protocol's defaults, used until the welcome gives the gateway's values.
DEFAULT_HEARTBEAT_INTERVAL = 15.0
DEFAULT_HEARTBEAT_TIMEOUT = 60.0
# Above this a heartbeat setting is taken as a mistake: a dead gateway would go unnoticed for too long.
MAX_HEARTBEAT_SECONDS = 3600.0
MAX_BACKOFF_SECONDS = 30.0
# Any frame about a task acknowledges it. A task answered within this time
# needs no separate "ack" frame, which saves the gateway a frame per call;
# well under the gateway's acknowledgement timeout (5 s by default).
ACK_GRACE_SECONDS = 0.5
# A body of more pieces than this is streamed into the upstream request as its
# pieces arrive (an 8 MiB upload chunk is 32), so it is never held whole; a
# smaller one is collected first, so that a bad piece refuses the task before
# the upstream sees any of it.
STREAMED_BODY_CHUNKS = 4
# Calls are counted, and the counts logged at INFO this often; a line per call
# (at DEBUG, or at INFO for a call that did not end with a 2xx status) cost
# about a tenth of the agent's CPU under load.
SUMMARY_SECONDS = 60.0

HOP_BY_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
     "transfer-encoding", "upgrade"}
)  # fmt: skip
# Host and length belong to this hop. Accept-encoding is left to aiohttp, which
# offers only the codings it can decode: the body is relayed decoded. Credentials
# are the executor's own: the gateway strips the client's, and none may pass even by mistake.
NOT_FORWARDED_HEADERS = HOP_BY_HOP_HEADERS | {
    "host", "content-length", "accept-encoding", "authorization", "cookie", "x-goog-api-key"
}  # fmt: skip
# Read failures of the upstream call; everything else is a bug of ours.
UPSTREAM_ERRORS = (aiohttp.ClientError, OSError)  # OSError includes TimeoutError

log = logging.getLogger("gemproxy.agent")


class GatewayGone(Exception):
    """The WebSocket to the gateway closed; the gateway fails the task over itself."""


@dataclass(frozen=True)
class AgentConfig:
    server: str
    token: str
    upstream: str = DEFAULT_UPSTREAM
    upstream_key: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    label: str = field(default_factory=socket.gethostname)


def executor_url(server: str) -> str:
    """The WebSocket URL for a gateway given as http(s):// or ws(s)://, with or without the path."""
    url = URL(server)
    scheme = {"http": "ws", "https": "wss"}.get(url.scheme, url.scheme)
    if scheme not in ("ws", "wss") or not url.host:
        raise ValueError(f"--server must be an http(s):// or ws(s):// URL, not {server!r}")
    path = url.path.rstrip("/")
    if not path.endswith(protocol.WEBSOCKET_PATH):
        path += protocol.WEBSOCKET_PATH
    return str(url.with_scheme(scheme).with_path(path).with_query(None).with_fragment(None))


def backoff_delay(attempt: int) -> float:
    """Capped exponential backoff with full jitter, so executors do not reconnect in step."""
    return random.uniform(0, min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(attempt, 16)))


def upstream_request_headers(client_headers: Mapping[str, str], upstream_key: str | None) -> dict[str, str]:
    headers = {name.lower(): value for name, value in client_headers.items()}
    headers = {name: value for name, value in headers.items() if name not in NOT_FORWARDED_HEADERS}
    if upstream_key:
        headers["x-goog-api-key"] = upstream_key
    return headers


def relayed_response_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Response headers as the protocol wants them: lower-case, joined, this hop's removed."""
    dropped = set(HOP_BY_HOP_HEADERS)
    dropped.update(token.strip().lower() for token in headers.get("connection", "").split(","))
    if headers.get("content-encoding", "identity").lower() != "identity":
        # aiohttp decoded the body, so the upstream's encoding and length no longer describe it.
        dropped.update({"content-encoding", "content-length"})
    relayed: dict[str, str] = {}
    for name, value in headers.items():
        name = name.lower()
        if name not in dropped:
            relayed[name] = f"{relayed[name]}, {value}" if name in relayed else value
    return relayed


def heartbeat_seconds(value: object, default: float) -> float:
    """A heartbeat setting from the welcome, or the default when it is not a plausible number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= MAX_HEARTBEAT_SECONDS:
        return float(value)
    return default


@dataclass
class Task:
    """One attempt: its request frame, the body pieces received so far, and its runner once started."""

    request: protocol.Request
    body: list[bytes] = field(default_factory=list)
    # For a streamed body: pieces on their way to the upstream (None ends it), and how many came.
    stream: asyncio.Queue[bytes | None] | None = None
    received: int = 0
    runner: asyncio.Task[None] | None = None
    ack_timer: asyncio.TimerHandle | None = None
    is_answered: bool = False

    def answered(self) -> None:
        """The first frame about this task is leaving: no separate ack is needed any more."""
        self.is_answered = True
        if self.ack_timer is not None:
            self.ack_timer.cancel()
            self.ack_timer = None

    @property
    def id(self) -> str:
        return self.request["id"]

    def upstream_url(self, upstream: str) -> URL:
        query = self.request["query"]
        # read_request allowed only characters that need no encoding, so encoded=True keeps yarl
        # from re-encoding or normalising them: the upstream sees exactly what was checked.
        return URL(upstream.rstrip("/") + self.request["path"] + (f"?{query}" if query else ""), encoded=True)


class Connection:
    """One WebSocket session with the gateway: frames in, tasks run, frames out."""

    def __init__(self, agent: Agent, ws: aiohttp.ClientWebSocketResponse):
        self.agent = agent
        self.ws = ws
        self.tasks: dict[str, Task] = {}
        self._late_acks: set[asyncio.Task[None]] = set()
        # One sender at a time: concurrent senders would share (and could cancel) one drain waiter.
        self._send_lock = asyncio.Lock()
        self._silence_limit = DEFAULT_HEARTBEAT_INTERVAL + DEFAULT_HEARTBEAT_TIMEOUT
        # When a frame last came (the loop's clock), the timeout that ends a silent connection, and its watchdog.
        self._heard = asyncio.get_running_loop().time()
        self._silence: asyncio.Timeout | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        # Whether the welcome took up binary_frames: body pieces then travel raw, not as base64.
        self.binary_frames = False

    async def serve(self) -> None:
        """Runs until the socket closes or falls silent; the tasks of this connection die with it."""
        loop = asyncio.get_running_loop()
        try:
            await self.send(self.agent.hello())
            async with asyncio.timeout(None) as self._silence:
                self._watch_for_silence()
                while True:
                    message = await self.ws.receive()
                    self._heard = loop.time()
                    if message.type is aiohttp.WSMsgType.TEXT or message.type is aiohttp.WSMsgType.BINARY:
                        await self._dispatch(message.data)
                    elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        self._log_close(message)
                        return
        except TimeoutError:
            if self._silence is None or not self._silence.expired():
                raise
            log.warning("nothing from the gateway for %.0fs; reconnecting", self._silence_limit)
        except GatewayGone:
            log.warning("the gateway connection broke")
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
            await self._abandon_tasks()

    def _watch_for_silence(self) -> None:
        """Ends ``serve`` once nothing came from the gateway for the silence limit.

        One timer for the connection, looking at when a frame last came, rather
        than a timeout around every ``receive``: making and entering that context
        is, in aiohttp's own words, almost half of its receive loop's time.
        """
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._silence is None:
            return
        loop = asyncio.get_running_loop()
        due = self._heard + self._silence_limit
        if due <= loop.time():
            self._silence.reschedule(loop.time())  # expires now: serve sees TimeoutError
        else:
            self._watchdog = loop.call_at(due, self._watch_for_silence)

    async def send(self, frame: Mapping[str, Any], *, unless_answered: Task | None = None) -> None:
        async with self._send_lock:
            if unless_answered is not None and unless_answered.is_answered:
                return  # an ack queued behind the answer itself would arrive after the task ended
            try:
                if "data" not in frame:
                    await self.ws.send_str(protocol.dumps(frame))
                elif self.binary_frames:
                    await self.ws.send_bytes(protocol.binary_frame(frame))
                else:
                    await self.ws.send_str(protocol.text_frame(frame))
            except (ConnectionError, aiohttp.ClientError) as exc:
                raise GatewayGone from exc

    async def _dispatch(self, message: str | bytes) -> None:
        """Hands one frame to its handler. Whatever the gateway sends, this connection goes on serving."""
        try:
            if isinstance(message, str):
                frame = protocol.loads(message)
            else:
                frame, data = protocol.split_binary_frame(message)
                frame["data"] = data
        except ValueError:
            log.warning("ignoring a frame that is not a JSON object with a type")
            return
        handler = {
            "welcome": self._on_welcome,
            "ping": self._on_ping,
            "request": self._on_request,
            "request_body": self._on_request_body,
            "cancel": self._on_cancel,
        }.get(frame["type"])
        if handler is None:
            return  # unknown types are ignored, as the protocol asks
        is_task_frame = frame["type"] in ("request", "request_body", "cancel")
        if is_task_frame and not task_checks.is_task_id(frame.get("id")):
            log.warning("ignoring a %s frame without a valid task id", frame["type"])
            return
        try:
            await handler(frame)
        except GatewayGone:
            raise
        except Exception:
            # A frame we did not foresee costs at most its own task, never the connection.
            log.exception("a %s frame could not be handled", frame["type"])
            if is_task_frame:
                await self._end_after_bug(frame["id"])

    async def _on_welcome(self, frame: dict[str, Any]) -> None:
        interval = heartbeat_seconds(frame.get("heartbeat_interval"), DEFAULT_HEARTBEAT_INTERVAL)
        timeout = heartbeat_seconds(frame.get("heartbeat_timeout"), DEFAULT_HEARTBEAT_TIMEOUT)
        self._silence_limit = interval + timeout
        self._watch_for_silence()  # by the new limit
        features = frame.get("features")
        self.binary_frames = isinstance(features, list) and protocol.FEATURE_BINARY_FRAMES in features
        self.agent.welcomed()
        account = frame.get("account")
        log.info("welcomed by the gateway as an executor of %r", account if isinstance(account, str) else None)

    async def _on_ping(self, frame: dict[str, Any]) -> None:
        await self.send({"type": "pong", "nonce": frame.get("nonce", "")})

    async def _on_request(self, frame: dict[str, Any]) -> None:
        task_id = frame["id"]
        if task_id in self.tasks:
            return  # a repeated frame for a live attempt is a duplicate, not a new task
        try:
            request = task_checks.read_request(frame)
        except BadTask as exc:
            log.warning("refused task %s: %s", task_id, exc)
            await self._fail(task_id, "bad_task", str(exc))
            return
        if "data" in frame and request["body_chunks"] == 0:
            # A binary request carries its body's first piece (the protocol's binary frames).
            await self._fail(task_id, "bad_task", "a request carrying a body piece must count it in body_chunks")
            return
        task = Task(request)
        task.ack_timer = asyncio.get_running_loop().call_later(ACK_GRACE_SECONDS, self._ack_late, task)
        self.tasks[task_id] = task
        if request["body_chunks"] > STREAMED_BODY_CHUNKS:
            task.stream = asyncio.Queue()
            self._start(task)
        elif request["body_chunks"] == 0:
            self._start(task)
        if "data" in frame:
            await self._on_request_body({"type": "request_body", "id": task_id, "seq": 0, "data": frame["data"]})

    def _ack_late(self, task: Task) -> None:
        task.ack_timer = None
        if self.tasks.get(task.id) is task:
            sending = asyncio.create_task(self.send(protocol.Ack(type="ack", id=task.id), unless_answered=task))
            self._late_acks.add(sending)  # the loop keeps only a weak reference
            sending.add_done_callback(self._late_acks.discard)

    async def _on_request_body(self, frame: dict[str, Any]) -> None:
        task = self.tasks.get(frame["id"])
        if task is None:
            # Routine after a cancel or a refusal, so it is no warning.
            log.debug("ignoring a request_body for task %s, which is not waiting for its body", frame["id"])
            return
        if task.stream is not None:
            await self._stream_piece(task, frame)
            return
        if task.runner is not None:
            log.warning("ignoring a request_body for task %s, whose body is complete", task.id)
            return
        try:
            task.body.append(task_checks.read_body_piece(frame, len(task.body)))
        except BadTask as exc:
            log.warning("refused task %s: %s", task.id, exc)
            await self._fail(task.id, "bad_task", str(exc))
            del self.tasks[task.id]
            return
        if len(task.body) == task.request["body_chunks"]:
            self._start(task)

    async def _stream_piece(self, task: Task, frame: dict[str, Any]) -> None:
        assert task.stream is not None
        if task.received == task.request["body_chunks"]:
            log.warning("ignoring a request_body for task %s, whose body is complete", task.id)
            return
        try:
            piece = task_checks.read_body_piece(frame, task.received)
        except BadTask as exc:
            # The upstream call has begun: cancelling it aborts the upload there.
            log.warning("refused task %s: %s", task.id, exc)
            del self.tasks[task.id]
            if task.runner is not None:
                task.runner.cancel()
            await self._fail(task.id, "bad_task", str(exc))
            return
        task.received += 1
        task.stream.put_nowait(piece)
        if task.received == task.request["body_chunks"]:
            task.stream.put_nowait(None)

    async def _on_cancel(self, frame: dict[str, Any]) -> None:
        task = self.tasks.pop(frame["id"], None)
        if task is not None:
            task.answered()
        if task is not None and task.runner is not None:
            # Cancelling the runner closes its upstream connection and frees its slot.
            task.runner.cancel()

    async def _end_after_bug(self, task_id: str) -> None:
        task = self.tasks.pop(task_id, None)
        if task is not None:
            task.answered()
            if task.runner is not None:
                task.runner.cancel()
        await self.send(protocol.Error(type="error", id=task_id, code="internal", message="the executor failed"))

    def _start(self, task: Task) -> None:
        task.runner = asyncio.create_task(self._run(task), name=f"task {task.id}")

    async def _run(self, task: Task) -> None:
        started = time.monotonic()
        outcome = "internal"
        try:
            outcome = await self._perform(task)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except GatewayGone:
            outcome = "gateway gone"
        finally:
            task.answered()
            if self.tasks.get(task.id) is task:
                del self.tasks[task.id]
            self.agent.calls[outcome] += 1
            level = logging.DEBUG if outcome.startswith("2") else logging.INFO
            if log.isEnabledFor(level):
                request_id = task.request.get("request_id", "-")
                log.log(
                    level,
                    "%s %s %s %.3fs request_id=%s",
                    task.request["method"],
                    task.request["path"],
                    outcome,
                    time.monotonic() - started,
                    request_id,
                    extra={"request_id": request_id, "outcome": outcome},
                )

    async def _perform(self, task: Task) -> str:
        """Performs the call and relays it; returns the outcome for the log line."""
        try:
            async with self.agent.slots:
                return str(await self._relay(task))
        except UPSTREAM_ERRORS as exc:
            await self._fail(task.id, "upstream_unreachable", describe_error(exc))
            return "upstream_unreachable"
        except GatewayGone:
            raise
        except Exception as exc:
            # Still end the attempt, or the gateway would wait for its timeouts.
            log.exception("task %s failed", task.id)
            await self._fail(task.id, "internal", type(exc).__name__)
            return "internal"

    async def _relay(self, task: Task) -> int:
        config = self.agent.config
        data: bytes | AsyncIterator[bytes] | None = b"".join(task.body) or None
        if task.stream is not None:
            data = _pieces_of(task.stream)
        async with self.agent.upstream.request(
            task.request["method"],
            task.upstream_url(config.upstream),
            headers=upstream_request_headers(task.request["headers"], config.upstream_key),
            data=data,
            allow_redirects=False,  # a tunnel relays redirects, it does not follow them
        ) as response:
            head = protocol.ResponseStart(
                type="response_start",
                id=task.id,
                status=response.status,
                headers=relayed_response_headers(response.headers),
            )
            # The head leaves with the body's first piece, and the task counts as
            # answered only then: until that frame goes, the ack timer still runs.
            length = response.content_length
            if length is not None and length <= protocol.BODY_CHUNK_BYTES:
                # A small answer is known whole at once: one frame instead of
                # three, which is most of the relay's cost for unary calls.
                body = await response.read()
                task.answered()
                if len(body) <= protocol.BODY_CHUNK_BYTES:
                    await self.send({**head, "data": body, "end": True})
                    return response.status
                seq = await self._send_start(head, body)
            else:
                # A stream's head waits for its first piece: one frame fewer
                # before the client's first byte (the gateway waits for that piece anyway).
                pieces = response.content.iter_any()
                first = await anext(pieces, b"")
                task.answered()
                seq = await self._send_start(head, first)
                async for data in pieces:
                    seq = await self._send_pieces(task.id, data, seq)
            await self.send(protocol.ResponseEnd(type="response_end", id=task.id, chunks=seq))
            return response.status

    async def _send_start(self, head: protocol.ResponseStart, data: bytes) -> int:
        """The head with the first frame-sized piece of ``data``, then the rest; returns the next seq."""
        first, rest = data[: protocol.BODY_CHUNK_BYTES], data[protocol.BODY_CHUNK_BYTES :]
        await self.send({**head, "data": first} if first else head)
        return await self._send_pieces(head["id"], rest, 0) if rest else 0

    async def _send_pieces(self, task_id: str, data: bytes, seq: int) -> int:
        """Relays data read from upstream at once, in frame-sized pieces; returns the next seq."""
        for piece in protocol.split_body(data):
            await self.send(protocol.ResponseBody(type="response_body", id=task_id, seq=seq, data=piece))
            seq += 1
        return seq

    async def _fail(self, task_id: str, code: protocol.ErrorCode, message: str) -> None:
        task = self.tasks.get(task_id)
        if task is not None:
            task.answered()
        await self.send(protocol.Error(type="error", id=task_id, code=code, message=protocol.error_message(message)))

    async def _abandon_tasks(self) -> None:
        runners = [task.runner for task in self.tasks.values() if task.runner is not None]
        self.tasks.clear()
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)

    def _log_close(self, message: aiohttp.WSMessage) -> None:
        code = self.ws.close_code
        if code == protocol.CLOSE_ACCOUNT_DISABLED:
            log.error("the gateway closed the connection: this executor account is disabled")
        elif code == protocol.CLOSE_TOKEN_REPLACED:
            log.error("the gateway closed the connection: this token was replaced; start the agent with the new one")
        elif code == protocol.CLOSE_PROTOCOL_ERROR:
            log.error("the gateway closed the connection for a protocol error")
        else:
            log.warning("the gateway closed the connection (code %s)", code)


async def _pieces_of(stream: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (piece := await stream.get()) is not None:
        yield piece


def describe_error(exc: BaseException) -> str:
    """One line about a failure, for the gateway and the log. Never the request's URL: aiohttp puts
    it in some messages, and its query is the client's."""
    if isinstance(exc, aiohttp.ClientResponseError):
        text = f"{exc.status}, {exc.message}"
    elif isinstance(exc, aiohttp.InvalidURL):
        text = ""
    else:
        text = str(exc)
    text = " ".join(text.split())
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


class Agent:
    def __init__(self, config: AgentConfig):
        self.config = config
        # One id per process, kept across reconnects, so the gateway sees the same executor.
        self.executor_id = str(uuid.uuid4())
        # Process-wide, not per connection: runners of a lost connection still hold
        # their slots until their cancellation has closed the upstream call.
        self.slots = asyncio.Semaphore(config.concurrency)
        self._attempt = 0
        self._upstream: aiohttp.ClientSession | None = None
        # Calls ended since the last summary line, by outcome (an HTTP status, or what went wrong).
        self.calls: Counter[str] = Counter()

    @property
    def upstream(self) -> aiohttp.ClientSession:
        assert self._upstream is not None, "the agent is not running"
        return self._upstream

    def hello(self) -> protocol.Hello:
        return protocol.Hello(
            type="hello",
            protocol=protocol.PROTOCOL_VERSION,
            executor_id=self.executor_id,
            label=self.config.label,
            software=SOFTWARE,
            max_concurrency=self.config.concurrency,
            # Bodies go upstream byte for byte, and large ones stream through;
            # body pieces may travel as binary frames, if the gateway agrees.
            features=[protocol.FEATURE_BINARY_BODY, protocol.FEATURE_BINARY_FRAMES],
        )

    def welcomed(self) -> None:
        self._attempt = 0

    def log_summary(self) -> None:
        """One INFO line with the calls ended since the last one, by outcome; nothing when there were none."""
        calls, self.calls = self.calls, Counter()
        if calls:
            outcomes = ", ".join(f"{outcome} x{count}" for outcome, count in sorted(calls.items()))
            log.info("%d calls in the last %.0fs: %s", calls.total(), SUMMARY_SECONDS, outcomes)

    async def _summarise(self) -> None:
        while True:
            await asyncio.sleep(SUMMARY_SECONDS)
            self.log_summary()

    async def run(self) -> None:
        """Serves the gateway until cancelled, reconnecting whenever the connection ends."""
        url = executor_url(self.config.server)
        upstream_connector = aiohttp.TCPConnector(limit=self.config.concurrency, ttl_dns_cache=300)
        async with (
            aiohttp.ClientSession(
                connector=upstream_connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
                # No cookie jar: a cookie set for one client's call must never ride on another's.
                cookie_jar=aiohttp.DummyCookieJar(),
            ) as self._upstream,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=30)) as gateway,
        ):
            summaries = asyncio.create_task(self._summarise())
            try:
                while True:
                    await self._connect_once(gateway, url)
                    delay = backoff_delay(self._attempt)
                    self._attempt += 1
                    log.info("reconnecting in %.1fs", delay)
                    await asyncio.sleep(delay)
            finally:
                summaries.cancel()
                self.log_summary()

    async def _connect_once(self, gateway: aiohttp.ClientSession, url: str) -> None:
        try:
            async with gateway.ws_connect(url, headers={"Authorization": f"Bearer {self.config.token}"}) as ws:
                log.info("connected to %s", url)
                await Connection(self, ws).serve()
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                log.error("the gateway refused the executor token (HTTP %d); it will not fix itself", exc.status)
            else:
                log.warning("WebSocket handshake with %s failed: HTTP %d", url, exc.status)
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("cannot reach the gateway at %s: %s", url, describe_error(exc))
        except Exception:
            # A bug or a frame we did not foresee must cost a reconnect, never the process.
            log.exception("the connection to the gateway failed unexpectedly")


SECRETS_HELP = """\
Secrets: a flag's value is visible to every user of this machine in `ps` (and
/proc). Prefer the environment (GEMPROXY_EXECUTOR_TOKEN, GEMINI_API_KEY) or a
file readable only by you (--token-file, --upstream-key-file: its first line,
stripped, is the secret). A secret given as a flag draws a warning."""


@dataclass(frozen=True)
class SecretSource:
    """Where one secret may come from: a flag (shown in `ps`), a file, or the environment."""

    flag: str
    file_flag: str
    env: str


TOKEN_SOURCE = SecretSource("--token", "--token-file", "GEMPROXY_EXECUTOR_TOKEN")
UPSTREAM_KEY_SOURCE = SecretSource("--upstream-key", "--upstream-key-file", "GEMINI_API_KEY")


def read_secret_file(path: str) -> str:
    """The first line of the file, stripped; ValueError when it cannot be read or holds no secret."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    lines = text.splitlines()
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise ValueError(f"{path} is empty: its first line must hold the secret")
    return secret


def choose_secret(parser: argparse.ArgumentParser, source: SecretSource, flag_value: str | None,
                  file_path: str | None) -> str | None:  # fmt: skip
    """The secret from the flag or the file (never both), else from the environment; warns about a flag."""
    if flag_value is not None and file_path is not None:
        parser.error(f"give {source.flag} or {source.file_flag}, not both")
    if file_path is not None:
        try:
            return read_secret_file(file_path)
        except ValueError as exc:
            parser.error(f"{source.file_flag}: {exc}")
    if flag_value is not None:
        print(
            f"{parser.prog}: warning: {source.flag} is visible to other users in `ps`; "
            f"use {source.env} or {source.file_flag} instead",
            file=sys.stderr,
        )
        return flag_value or None
    return os.environ.get(source.env) or None


def parse_args(argv: list[str] | None = None) -> AgentConfig:
    parser = argparse.ArgumentParser(
        prog="python -m executors.agent",
        description="gemproxy headless executor",
        epilog=SECRETS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--server", default=os.environ.get("GEMPROXY_SERVER"), help="gateway base URL")
    parser.add_argument("--token-file", metavar="PATH", help="file holding the executor token (first line)")
    parser.add_argument(
        "--token", help="executor token (visible in `ps`: prefer GEMPROXY_EXECUTOR_TOKEN or --token-file)"
    )
    parser.add_argument("--upstream", default=DEFAULT_UPSTREAM, help="Gemini API base URL")
    parser.add_argument("--upstream-key-file", metavar="PATH", help="file holding the upstream API key (first line)")
    parser.add_argument(
        "--upstream-key",
        help="API key for the upstream (visible in `ps`: prefer GEMINI_API_KEY or --upstream-key-file)",
    )
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="most tasks at once")
    parser.add_argument("--label", default=socket.gethostname(), help="informational name")
    args = parser.parse_args(argv)
    token = choose_secret(parser, TOKEN_SOURCE, args.token, args.token_file)
    upstream_key = choose_secret(parser, UPSTREAM_KEY_SOURCE, args.upstream_key, args.upstream_key_file)
    if not args.server or not token:
        parser.error(
            "--server and an executor token are required "
            "(GEMPROXY_SERVER; GEMPROXY_EXECUTOR_TOKEN, --token-file or --token)"
        )
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    try:
        executor_url(args.server)
    except ValueError as exc:
        parser.error(str(exc))
    return AgentConfig(args.server, token, args.upstream, upstream_key, args.concurrency, args.label)


async def run_until_signalled(agent: Agent) -> None:
    """Runs the agent until SIGINT or SIGTERM, then stops it cleanly."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, main.cancel)
    try:
        await agent.run()
    except asyncio.CancelledError:
        log.info("stopped")


def log_level() -> int:
    """LOG_LEVEL, as the gateway reads it (DEBUG shows a line for every call); INFO when unset or unknown."""
    level = logging.getLevelName(os.environ.get("LOG_LEVEL", "").strip().upper() or "INFO")
    return level if isinstance(level, int) else logging.INFO


def main(argv: list[str] | None = None) -> None:
    if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
        use_json_logs(log_level())
    else:
        logging.basicConfig(level=log_level(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    log.info("%s starting: %d slots, upstream %s", SOFTWARE, config.concurrency, URL(config.upstream).origin())
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run_until_signalled(Agent(config)))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (requirements.txt pins it): it costs less CPU per frame and call."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
