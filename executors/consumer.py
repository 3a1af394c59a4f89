"""The executor's end of the WebSocket: protocol v1 on one side, the channel layer on the other.

The consumer is a router. Tasks arrive from dispatchers, handed over in this
process or through the channel layer from others (executors.handoff), and
leave as frames; frames about a task go back to that task's reply channel
untouched. It keeps no ORM work on the per-frame path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from functools import partial

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from executors import handoff, protocol
from executors.liveness import get_liveness
from executors.models import ExecutorAccount
from executors.registry import ExecutorInfo, get_registry
from gemproxy_site.asgi_extensions import RECEIVE_INTO
from gemproxy_site.ids import new_id

log = logging.getLogger(__name__)

MAX_CONCURRENCY = 1000
# How often a connection asks the database whether its account is still enabled
# and its token still the account's. With the close that follows, a disabled
# account or a replaced token is cut off within 20 s whatever the heartbeat
# interval; one indexed query per executor every 10 s keeps it off the frame path.
ACCOUNT_CHECK_SECONDS = 10.0
# How often a connection refreshes its registry entry (deadline, tasks in
# flight), at most: a Redis restart empties the registry, and the first refresh
# after it registers the connection again. Decoupled from the ping interval
# (15 s by default) so that service is back within seconds of Redis; one Lua
# script per executor every 3 s costs Redis nothing.
REGISTRY_REFRESH_SECONDS = 3.0
REGISTRY_RETRY_SECONDS = 0.5
# How long a connection tries to get a message it sent itself back through the
# channel layer before it registers again (see _reachable), re-sending it this
# often: a probe published before the layer subscribed again is simply lost.
PROBE_SECONDS = 2.0
PROBE_RESEND_SECONDS = 0.25
# Channels' own close code for a fault of the application.
CLOSE_INTERNAL_ERROR = 1011


def token_from_scope(scope: dict) -> str:
    """The executor token from ``Authorization: Bearer`` or, for browsers, a subprotocol."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    for offered in scope.get("subprotocols", []):
        if offered.startswith(protocol.TOKEN_SUBPROTOCOL_PREFIX):
            return offered[len(protocol.TOKEN_SUBPROTOCOL_PREFIX) :]
    return ""


@database_sync_to_async
def _find_account(token: str) -> ExecutorAccount | None:
    return ExecutorAccount.objects.matching(token) if token else None


@database_sync_to_async
def _account_standing(account_id: int, token_digest: str) -> str:
    return ExecutorAccount.objects.standing(account_id, token_digest)


_CLOSE_CODE_OF_STANDING = {"disabled": protocol.CLOSE_ACCOUNT_DISABLED, "replaced": protocol.CLOSE_TOKEN_REPLACED}


def _excerpt(message: str | bytes | None) -> str:
    """A short repr of what an executor sent, for a log line: never the whole frame."""
    return repr(message[:100] if message is not None else None)


@dataclass
class _Attempt:
    """A task in flight on this connection, and how far its response has come."""

    reply_channel: str
    started: bool = False  # its response_start was forwarded
    pieces: int = 0  # response_body frames forwarded


def _open_at(name: str, offset: int) -> File:
    handle = default_storage.open(name, "rb")
    handle.seek(offset)
    return handle


def _unreadable(attempt_id: str) -> dict:
    return {
        "type": "executor.frame",
        "frame": {"type": "error", "id": attempt_id, "code": "internal", "message": "the request body is unreadable"},
    }


def _lost(attempt_id: str, message: str) -> dict:
    return {
        "type": "executor.frame",
        "frame": {"type": "error", "id": attempt_id, "code": "executor_lost", "message": message},
    }


# Clean-ups still running after their connection ended (a reference keeps each task alive).
_leaving: set[asyncio.Task] = set()


def _leave_later(connection_id: str) -> None:
    """Unregister once Redis answers again, within the heartbeat timeout.

    An entry left behind would look live until its deadline, and a Redis that
    persists (AOF) brings it back after a restart: tasks would go to a
    connection that is gone, and its busy slots would count as stuck.
    """

    async def retry() -> None:
        clock = asyncio.get_running_loop()
        give_up = clock.time() + settings.GEMPROXY_HEARTBEAT_TIMEOUT
        while clock.time() < give_up:
            await asyncio.sleep(REGISTRY_RETRY_SECONDS)
            with contextlib.suppress(Exception):
                await get_registry().unregister(connection_id)
                return

    task = asyncio.get_running_loop().create_task(retry())
    _leaving.add(task)
    task.add_done_callback(_leaving.discard)


class ExecutorConsumer(AsyncWebsocketConsumer):
    account: ExecutorAccount | None = None
    info: ExecutorInfo | None = None
    heartbeats: asyncio.Task | None = None
    # Set once the gateway decided to close: frames still queued are not read,
    # so nothing can register this connection again.
    ending = False
    # Set while the registry cannot be reached, so that an outage is logged once.
    registry_failing = False
    # Resolved when this connection's own probe comes back through the channel layer.
    probe: asyncio.Future | None = None
    # Whether the welcome took up binary_frames: then body pieces may travel as binary frames both ways.
    binary_frames = False

    async def __call__(self, scope: dict, receive, send) -> None:
        """Channels' consumer loop, reading one mailbox where Channels waits on two sources.

        Tasks and cancels from dispatchers of this process are handed to the
        mailbox directly; those of other processes come through the layer's
        receive, and the executor's frames through the socket's, each moved in
        by a feed of its own: one queue, so each is handled in the order it
        came, without the task and ``asyncio.wait`` Channels spends per message.
        Under our server the socket's messages need no feed: it puts them into
        the mailbox itself (``asgi_extensions.RECEIVE_INTO``).
        """
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        mailbox = handoff.open_mailbox(self.channel_name)
        feeds = [handoff.Feed(partial(self.channel_layer.receive, self.channel_name), mailbox)]
        receive_into = scope.get("extensions", {}).get(RECEIVE_INTO)
        if receive_into is not None:
            receive_into(mailbox.put)  # our server hands the socket's messages over as they arrive
        else:
            feeds.append(handoff.Feed(receive, mailbox))
        try:
            while True:
                await self.dispatch(await mailbox.get())
        except StopConsumer:
            pass
        finally:
            handoff.close_mailbox(self.channel_name)
            for feed in feeds:
                await feed.close()

    async def _reply(self, reply_channel: str, message: dict) -> None:
        await handoff.send(self.channel_layer, reply_channel, message)

    async def connect(self) -> None:
        self.attempts: dict[str, _Attempt] = {}
        self.account = await _find_account(token_from_scope(self.scope))
        if self.account is None:
            # Closing before accepting makes Daphne refuse the handshake with 403.
            await self.close()
            return
        self.last_seen = time.monotonic()
        offered = self.scope.get("subprotocols", [])
        await self.accept(protocol.SUBPROTOCOL if protocol.SUBPROTOCOL in offered else None)

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections before every message, a
        # thread hop each time: five per relayed call, measured as the largest
        # cost on the relay path. This consumer reaches the database only
        # through database_sync_to_async, which does that clean-up itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.ending:
            return
        self.last_seen = time.monotonic()
        message = text_data if text_data is not None else bytes_data
        try:
            if text_data is None and not self.binary_frames:
                raise protocol.ProtocolViolation("a binary frame, but binary_frames was not agreed in the welcome")
            frame = protocol.parse_executor_frame(message)  # type: ignore[arg-type]
            if self.info is None:
                await self._hello(frame)
            elif frame is not None:
                await self._forward(frame)
        except protocol.ProtocolViolation as violation:
            log.warning(
                "executor %s broke the protocol (%s) with %s; closing", self._name(), violation, _excerpt(message)
            )
            await self._end(protocol.CLOSE_PROTOCOL_ERROR)
        except Exception:
            # Our fault, not the executor's; still, no registry entry may outlive the connection.
            log.exception("executor %s: a frame could not be handled; closing", self._name())
            await self._end(CLOSE_INTERNAL_ERROR)

    def _name(self) -> str:
        if self.info is not None:
            return f"{self.info.executor_id} of {self.info.account_label}"
        return f"of {self.account}"

    async def _hello(self, frame: protocol.ExecutorFrame | None) -> None:
        if frame is None or frame["type"] != "hello":
            raise protocol.ProtocolViolation("the first frame must be hello")
        assert self.account is not None
        liveness = get_liveness()
        # Other processes' dispatchers know this process lives only while it says so.
        liveness.ensure_running()
        self.info = ExecutorInfo(
            connection_id=new_id(),
            executor_id=frame["executor_id"],
            channel_name=self.channel_name,
            account_id=self.account.pk,
            account_label=self.account.label,
            software=frame["software"],
            max_concurrency=min(MAX_CONCURRENCY, frame["max_concurrency"]),
            connected_at=time.time(),
            features=tuple(frame.get("features", ())),
            process_id=liveness.process_id,
        )
        await get_registry().register(self.info, time.time() + settings.GEMPROXY_HEARTBEAT_TIMEOUT)
        welcome: protocol.Welcome = {
            "type": "welcome",
            "protocol": protocol.PROTOCOL_VERSION,
            "executor_id": self.info.executor_id,
            "account": self.account.label,
            "heartbeat_interval": settings.GEMPROXY_HEARTBEAT_INTERVAL,
            "heartbeat_timeout": settings.GEMPROXY_HEARTBEAT_TIMEOUT,
        }
        if protocol.FEATURE_BINARY_FRAMES in self.info.features:
            welcome["features"] = [protocol.FEATURE_BINARY_FRAMES]
        await self.send(text_data=protocol.dumps(welcome))
        # Only after the welcome: until the executor reads it, it sends text frames only.
        self.binary_frames = "features" in welcome
        self.heartbeats = asyncio.create_task(self._heartbeat_loop())
        log.info(
            "executor %s of %s connected (%s, %d slots)",
            self.info.executor_id,
            self.account.label,
            self.info.software,
            self.info.max_concurrency,
        )

    async def _forward(self, frame: protocol.ExecutorFrame) -> None:
        attempt_id = frame.get("id")
        attempt = self.attempts.get(attempt_id) if isinstance(attempt_id, str) else None
        if attempt is None or not isinstance(attempt_id, str):
            return  # hello again, a pong, or a late frame of an attempt that is over: dropped by design
        kind = frame["type"]
        # The order of a response's frames is checked here, where they enter,
        # so that a dispatcher never relays a stream with a gap in it.
        if frame["type"] == "response_start":
            if attempt.started:
                raise protocol.ProtocolViolation("a second response_start")
            attempt.started = True
        elif frame["type"] in ("response_body", "response_end") and not attempt.started:
            raise protocol.ProtocolViolation(f"{kind} before response_start")
        elif frame["type"] == "response_body":
            if frame["seq"] != attempt.pieces:
                raise protocol.ProtocolViolation(f"response_body seq {frame['seq']} where {attempt.pieces} was due")
            attempt.pieces += 1
        elif frame["type"] == "response_end" and frame["chunks"] != attempt.pieces:
            raise protocol.ProtocolViolation(f"response_end counts {frame['chunks']} pieces of {attempt.pieces}")
        if kind in ("response_end", "error") or (frame["type"] == "response_start" and frame.get("end")):
            del self.attempts[attempt_id]  # the attempt is over: later frames about it are dropped
        await self._reply(attempt.reply_channel, {"type": "executor.frame", "frame": frame})

    async def _heartbeat_loop(self) -> None:
        """Ping, refresh the registry entry, and re-check the account, each on its own schedule."""
        clock = asyncio.get_running_loop()
        ping_every = settings.GEMPROXY_HEARTBEAT_INTERVAL
        refresh_every = min(ping_every, REGISTRY_REFRESH_SECONDS)
        next_ping = clock.time() + ping_every
        next_refresh = clock.time() + refresh_every
        next_check = clock.time() + ACCOUNT_CHECK_SECONDS
        beat = 0
        while not self.ending:
            await asyncio.sleep(max(0.0, min(next_ping, next_refresh, next_check) - clock.time()))
            now = clock.time()
            try:
                if now >= next_check:
                    next_check = now + ACCOUNT_CHECK_SECONDS
                    await self._check_account()
                if now >= next_ping and not self.ending:
                    next_ping = now + ping_every
                    beat += 1
                    await self._ping(beat)
                if now >= next_refresh and not self.ending:
                    await self._refresh_registry()
                    # While Redis is out, try often: service is back as soon as it answers.
                    next_refresh = clock.time() + (REGISTRY_RETRY_SECONDS if self.registry_failing else refresh_every)
            except Exception:
                # A database blip: the next round tries again; the executor stays.
                log.exception("heartbeat of executor %s failed", self._name())

    async def _check_account(self) -> None:
        assert self.account is not None and self.info is not None
        standing = await _account_standing(self.account.pk, self.account.token_digest)
        if standing != "valid":
            log.warning("executor %s: its account's token was %s; closing", self._name(), standing)
            await self._end(_CLOSE_CODE_OF_STANDING[standing])

    async def _ping(self, beat: int) -> None:
        # Whatever the registry does: the connection's liveness is the
        # executor's and ours, not Redis's, and a Redis outage longer than the
        # deadline must not make either side hang up.
        if time.monotonic() - self.last_seen > settings.GEMPROXY_HEARTBEAT_TIMEOUT:
            log.warning("executor %s missed its heartbeat deadline; closing", self._name())
            await self._end(protocol.CLOSE_HEARTBEAT_MISSED)
            return
        await self.send(text_data=protocol.dumps({"type": "ping", "nonce": str(beat)}))

    async def _refresh_registry(self) -> None:
        info = self.info
        if info is None:
            return
        deadline = time.time() - (time.monotonic() - self.last_seen) + settings.GEMPROXY_HEARTBEAT_TIMEOUT
        try:
            await self._refresh(info, deadline)
        except Exception as error:
            # Redis is down or hangs: keep trying; the first refresh after it
            # answers again registers this connection anew. One line per outage.
            if not self.registry_failing:
                self.registry_failing = True
                log.error("executor %s: the registry is unreachable (%r); retrying", self._name(), error)
            return
        if self.registry_failing:
            self.registry_failing = False
            log.warning("executor %s: the registry answers again", self._name())

    async def _refresh(self, info: ExecutorInfo, deadline: float) -> None:
        registry = get_registry()
        if not await registry.heartbeat(info.connection_id, deadline, len(self.attempts)):
            # Pruned after a late sign of life, or lost with a Redis restart: a
            # connection that is alive must be choosable again, but only once
            # tasks sent to its channel reach it, or they would be lost.
            if not await self._reachable():
                log.warning("executor %s: its channel does not deliver yet; registering it later", self._name())
                return
            log.warning("executor %s was missing from the registry; registering it again", self._name())
            await registry.register(info, deadline)
            await registry.heartbeat(info.connection_id, deadline, len(self.attempts))
            if self.info is None:  # it left while registering
                await registry.unregister(info.connection_id)

    async def _reachable(self) -> bool:
        """Whether a message sent to this connection's channel now comes back to it.

        After a Redis restart the pub/sub layer subscribes again to this
        channel only when its reader reconnects, up to a second or so after
        the registry answers. Only called from the heartbeat task: the
        consumer's own loop must stay free to deliver the probe.
        """
        clock = asyncio.get_running_loop()
        probe = self.probe = clock.create_future()
        # Through the layer, never handed over: the question is whether the layer delivers.
        give_up = clock.time() + PROBE_SECONDS
        try:
            while not probe.done() and clock.time() < give_up:
                await self.channel_layer.send(self.channel_name, {"type": "executor.probe"})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(probe), PROBE_RESEND_SECONDS)
        finally:
            self.probe = None
        return probe.done()

    async def executor_probe(self, message: dict) -> None:
        if self.probe is not None and not self.probe.done():
            self.probe.set_result(None)

    async def executor_task(self, message: dict) -> None:
        """A dispatcher's task for this executor: send it as a request and its body frames."""
        attempt_id = message["attempt_id"]
        if self.info is None:
            # This connection has left the registry; the dispatcher must not wait for an ack.
            await self._reply(message["reply_channel"], _lost(attempt_id, "executor disconnected"))
            return
        stored = message.get("stored_body")
        if stored is not None:
            await self._send_stored_task(message, stored)
            return
        self.attempts[attempt_id] = _Attempt(message["reply_channel"])
        pieces = protocol.split_body(message["body"])
        request = self._request(message, len(pieces))
        if self.binary_frames and pieces:
            # The body's first piece rides in the request frame: a usual call's
            # whole body, so one frame to send (and to read there) instead of two.
            await self.send(bytes_data=protocol.binary_frame({**request, "data": pieces[0]}))
            sent = 1
        else:
            await self.send(text_data=protocol.dumps(request))
            sent = 0
        for seq in range(sent, len(pieces)):
            await self._send_body_piece(attempt_id, seq, pieces[seq])

    def _request(self, message: dict, body_chunks: int) -> protocol.Request:
        request: protocol.Request = {
            "type": "request",
            "id": message["attempt_id"],
            "method": message["method"],
            "path": message["path"],
            "query": message["query"],
            "headers": message["headers"],
            "body_chunks": body_chunks,
        }
        if message.get("request_id"):
            request["request_id"] = message["request_id"]
        return request

    async def _send_body_piece(self, attempt_id: str, seq: int, piece: bytes) -> None:
        body: protocol.RequestBody = {"type": "request_body", "id": attempt_id, "seq": seq, "data": piece}
        if self.binary_frames:
            await self.send(bytes_data=protocol.binary_frame(body))
        else:
            await self.send(text_data=protocol.text_frame(body))

    async def _send_stored_task(self, message: dict, stored: dict) -> None:
        """A task whose body is read from storage here, piece by piece, never held whole."""
        attempt_id, reply_channel = message["attempt_id"], message["reply_channel"]
        name, offset, length = stored["name"], int(stored["offset"]), int(stored["length"])
        try:
            handle = await asyncio.to_thread(_open_at, name, offset)
        except Exception as error:
            log.error("the body of task %s cannot be read from storage: %r", attempt_id, error)
            await self._reply(reply_channel, _unreadable(attempt_id))
            return
        try:
            self.attempts[attempt_id] = _Attempt(reply_channel)
            chunks = -(-length // protocol.BODY_CHUNK_BYTES)
            await self.send(text_data=protocol.dumps(self._request(message, chunks)))
            for seq in range(chunks):
                if attempt_id not in self.attempts:
                    return  # the executor refused it, or this connection ended
                size = min(protocol.BODY_CHUNK_BYTES, length - seq * protocol.BODY_CHUNK_BYTES)
                piece = await asyncio.to_thread(handle.read, size)
                if len(piece) != size:
                    raise OSError(f"{name} ended {length - seq * protocol.BODY_CHUNK_BYTES - len(piece)} bytes early")
                await self._send_body_piece(attempt_id, seq, piece)
        except Exception as error:
            log.error("the body of task %s could not be sent whole: %r", attempt_id, error)
            if self.attempts.pop(attempt_id, None) is not None:
                with contextlib.suppress(Exception):
                    await self.send(text_data=protocol.dumps({"type": "cancel", "id": attempt_id}))
                await self._reply(reply_channel, _unreadable(attempt_id))
        finally:
            await asyncio.to_thread(handle.close)

    async def executor_cancel(self, message: dict) -> None:
        attempt_id = message["attempt_id"]
        if self.attempts.pop(attempt_id, None) is not None:
            await self.send(text_data=protocol.dumps({"type": "cancel", "id": attempt_id}))

    async def disconnect(self, code: int) -> None:
        self.ending = True
        await self._leave()

    async def _end(self, code: int) -> None:
        """Close the socket and clean up now, without waiting for Daphne's disconnect to come back."""
        self.ending = True
        with contextlib.suppress(Exception):
            await self.close(code=code)
        await self._leave()

    async def _leave(self) -> None:
        """Leave the registry and fail every task in flight, so no dispatcher waits in vain."""
        if self.heartbeats is not None and self.heartbeats is not asyncio.current_task():
            self.heartbeats.cancel()
        if self.info is None:
            return
        info, self.info = self.info, None
        try:
            await get_registry().unregister(info.connection_id)
        except Exception:
            # The dispatchers must hear of the loss now regardless; the entry goes as soon as Redis answers.
            log.exception("executor %s could not leave the registry; retrying", info.executor_id)
            _leave_later(info.connection_id)
        attempts, self.attempts = self.attempts, {}
        for attempt_id, attempt in attempts.items():
            with contextlib.suppress(Exception):
                await self._reply(attempt.reply_channel, _lost(attempt_id, "executor disconnected"))
        log.info("executor %s of %s left", info.executor_id, info.account_label)
