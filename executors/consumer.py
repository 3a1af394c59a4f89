"""The executor's end of the WebSocket: protocol v1 on one side, the channel layer on the other.

The consumer is a router. Tasks arrive from dispatchers through the channel
layer and leave as frames; frames about a task go back to that task's reply
channel untouched. It keeps no ORM work on the per-frame path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from executors import protocol
from executors.models import ExecutorAccount
from executors.registry import ExecutorInfo, get_registry

log = logging.getLogger(__name__)

MAX_CONCURRENCY = 1000
# Account checks hit the database, so they run every few heartbeats, not every one.
ACCOUNT_CHECK_EVERY = 4


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
def _account_enabled(account_id: int) -> bool:
    return ExecutorAccount.objects.filter(pk=account_id, enabled=True).exists()


class ExecutorConsumer(AsyncWebsocketConsumer):
    account: ExecutorAccount | None = None
    info: ExecutorInfo | None = None
    heartbeats: asyncio.Task | None = None

    async def connect(self) -> None:
        self.attempts: dict[str, str] = {}  # attempt id -> reply channel
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
        self.last_seen = time.monotonic()
        try:
            frame = protocol.loads(text_data if text_data is not None else bytes_data)
        except ValueError:
            await self.close(code=protocol.CLOSE_PROTOCOL_ERROR)
            return
        kind = frame["type"]
        if self.info is None:
            await self._hello(frame)
        elif kind != "pong":
            await self._forward(frame)

    async def _hello(self, frame: dict) -> None:
        if frame["type"] != "hello" or frame.get("protocol") != protocol.PROTOCOL_VERSION:
            log.warning("executor of %s: expected hello for protocol 1, got %.200r", self.account, frame)
            await self.close(code=protocol.CLOSE_PROTOCOL_ERROR)
            return
        assert self.account is not None
        concurrency = frame.get("max_concurrency")
        self.info = ExecutorInfo(
            connection_id=uuid.uuid4().hex,
            executor_id=str(frame.get("executor_id") or "")[:100],
            channel_name=self.channel_name,
            account_id=self.account.pk,
            account_label=self.account.label,
            software=str(frame.get("software") or "")[:100],
            max_concurrency=max(1, min(MAX_CONCURRENCY, concurrency if isinstance(concurrency, int) else 1)),
            connected_at=time.time(),
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
        await self.send(text_data=protocol.dumps(welcome))
        self.heartbeats = asyncio.create_task(self._heartbeat_loop())
        log.info(
            "executor %s of %s connected (%s, %d slots)",
            self.info.executor_id,
            self.account.label,
            self.info.software,
            self.info.max_concurrency,
        )

    async def _forward(self, frame: dict) -> None:
        attempt_id = frame.get("id")
        reply_channel = self.attempts.get(attempt_id)  # type: ignore[arg-type]
        if reply_channel is None:
            return  # a late frame of an attempt that is over: dropped by design
        if frame["type"] in ("response_end", "error") or (frame["type"] == "response_start" and frame.get("end")):
            del self.attempts[attempt_id]  # the attempt is over: later frames about it are dropped
        await self.channel_layer.send(reply_channel, {"type": "executor.frame", "frame": frame})

    async def _heartbeat_loop(self) -> None:
        assert self.info is not None
        interval = settings.GEMPROXY_HEARTBEAT_INTERVAL
        timeout = settings.GEMPROXY_HEARTBEAT_TIMEOUT
        for beat in range(1, 2**62):
            await asyncio.sleep(interval)
            silent_for = time.monotonic() - self.last_seen
            if silent_for > timeout:
                log.warning("executor %s missed its heartbeat deadline; closing", self.info.executor_id)
                await self.close(code=protocol.CLOSE_HEARTBEAT_MISSED)
                await self._leave()
                return
            if beat % ACCOUNT_CHECK_EVERY == 0 and not await _account_enabled(self.info.account_id):
                await self.close(code=protocol.CLOSE_ACCOUNT_DISABLED)
                await self._leave()
                return
            deadline = time.time() - silent_for + timeout
            await get_registry().heartbeat(self.info.connection_id, deadline, len(self.attempts))
            await self.send(text_data=protocol.dumps({"type": "ping", "nonce": str(beat)}))

    async def executor_task(self, message: dict) -> None:
        """A dispatcher's task for this executor: send it as a request and its body frames."""
        attempt_id = message["attempt_id"]
        self.attempts[attempt_id] = message["reply_channel"]
        pieces = protocol.split_body(message["body"])
        request: protocol.Request = {
            "type": "request",
            "id": attempt_id,
            "method": message["method"],
            "path": message["path"],
            "query": message["query"],
            "headers": message["headers"],
            "body_chunks": len(pieces),
        }
        await self.send(text_data=protocol.dumps(request))
        for seq, piece in enumerate(pieces):
            body: protocol.RequestBody = {
                "type": "request_body",
                "id": attempt_id,
                "seq": seq,
                "data": protocol.encode_body(piece),
            }
            await self.send(text_data=protocol.dumps(body))

    async def executor_cancel(self, message: dict) -> None:
        attempt_id = message["attempt_id"]
        if self.attempts.pop(attempt_id, None) is not None:
            await self.send(text_data=protocol.dumps({"type": "cancel", "id": attempt_id}))

    async def disconnect(self, code: int) -> None:
        if self.heartbeats is not None and self.heartbeats is not asyncio.current_task():
            self.heartbeats.cancel()
        await self._leave()

    async def _leave(self) -> None:
        """Leave the registry and fail every task in flight, so no dispatcher waits in vain."""
        if self.info is None:
            return
        info, self.info = self.info, None
        await get_registry().unregister(info.connection_id)
        attempts, self.attempts = self.attempts, {}
        for attempt_id, reply_channel in attempts.items():
            lost = {"type": "error", "id": attempt_id, "code": "executor_lost", "message": "executor disconnected"}
            with contextlib.suppress(Exception):
                await self.channel_layer.send(reply_channel, {"type": "executor.frame", "frame": lost})
        log.info("executor %s of %s left", info.executor_id, info.account_label)
