"""The dispatcher: one client request's trip through executors, retries included.

``Exchange.start`` chooses an executor, sends the task, and returns once the
response's head and first body piece are known; until then a failed attempt
is retried on another executor, invisibly to the client. An upstream 429
cools its account down for the model as long as the upstream asked
(``executors.cooldown``); when every account able to serve the model is
cooling down, ``start`` raises ``CoolingDown`` at once rather than wait for
one. ``Exchange.body`` streams the rest. ``Exchange.close`` (always, in ``finally``) cancels an
unfinished attempt and frees the executor's slot.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Protocol

from django.conf import settings

from executors import protocol
from executors.cooldown import READ_LIMIT, upstream_delay
from executors.liveness import ProcessWatch, watch_process
from executors.registry import Choice, Lease, get_registry
from executors.reply import ReplyChannel
from gemproxy_site.ids import new_id

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class DispatchError(Exception):
    """The call failed on our side of the upstream; carries Gemini's words for it."""

    def __init__(self, http_status: int, status: str, message: str, outcome: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status = status
        self.message = message
        self.outcome = outcome  # the usage record's outcome


class CoolingDown(DispatchError):
    """Every account that could serve the model is out of upstream quota; the first is free in ``retry_after`` s."""

    def __init__(self, model: str, seconds: float) -> None:
        self.model = model
        self.seconds = max(0.0, seconds)
        self.retry_after = max(1, math.ceil(self.seconds))
        super().__init__(
            429,
            "RESOURCE_EXHAUSTED",
            f"Every executor account is out of quota for {model or 'this model'}; retry in {self.retry_after} s.",
            "upstream_error",
        )


def _unavailable(message: str, outcome: str = "unavailable") -> DispatchError:
    return DispatchError(503, "UNAVAILABLE", message, outcome)


def _account_absent() -> DispatchError:
    return _unavailable(
        "The executor account holding a resource this request refers to has no executor connected. "
        "Try again when it is back."
    )


def _deadline_exceeded(message: str) -> DispatchError:
    return DispatchError(504, "DEADLINE_EXCEEDED", message, "timeout")


def _malformed() -> DispatchError:
    # The consumer validates every frame where it enters, so this is a defence
    # in depth: whatever arrives here, the answer is an error, never a crash.
    return _unavailable("The executor sent a frame the gateway cannot read.", "executor_lost")


def _body_of(frame: dict) -> bytes:
    data = frame.get("data")
    if not isinstance(data, bytes):  # the consumer decoded and checked it where it entered
        raise _malformed()
    return data


def _head_of(frame: dict) -> ResponseHead:
    status, headers = frame.get("status"), frame.get("headers")
    if type(status) is not int or not 100 <= status <= 599 or not isinstance(headers, dict):
        raise _malformed()
    if not all(isinstance(name, str) and isinstance(value, str) for name, value in headers.items()):
        raise _malformed()
    return ResponseHead(status, dict(headers))


class _AttemptFailed(Exception):
    """This executor failed before the first byte; another one may succeed."""

    def __init__(self, error: DispatchError) -> None:
        self.error = error


@dataclass(frozen=True)
class StoredBody:
    """A request body that stays in Django's default storage: ``length`` bytes of ``name`` from ``offset``.

    The channel layer carries only this reference; the consumer serving the
    executor reads the bytes and sends them as request_body frames, so a large
    upload never becomes one channel-layer message (nor sits in the dispatcher's memory).
    """

    name: str
    offset: int
    length: int


class Binder(Protocol):
    """Fits a call to the account that serves it (resources.binding): the per-attempt hook of ``Task``."""

    async def body_for(self, account_id: int) -> bytes:
        """The body to send to that account; may first copy what it refers to there. Raises DispatchError."""
        ...

    async def lost(self, account_id: int, status: int, body: bytes) -> bool:
        """Whether this error answer says the account lost something the body refers to (now forgotten)."""
        ...


@dataclass
class Task:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes | StoredBody
    model: str
    # Where a resource the call refers to lives (resources.placements): only these
    # accounts may serve it (None: any), and among those, these are preferred.
    accounts: frozenset[int] | None = None
    prefer: frozenset[int] = frozenset()
    # The call's id in the gateway's log (gateway.request_id), for the executor's log.
    request_id: str = ""
    # What the serving executor must have announced in its hello (protocol.FEATURES).
    features: frozenset[str] = frozenset()
    binder: Binder | None = None

    @property
    def needs(self) -> frozenset[str]:
        if isinstance(self.body, StoredBody):
            return self.features | {protocol.FEATURE_BINARY_BODY}
        return self.features


@dataclass
class ResponseHead:
    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Refusal:
    """An upstream error answer kept while another executor is tried: relayed if nothing better comes."""

    head: ResponseHead
    pieces: list[bytes]
    account_label: str
    account_id: int


class Exchange:
    def __init__(self, task: Task) -> None:
        self.task = task
        self.attempts = 0
        self.account_label = ""  # the account whose answer the client gets
        self.account_id: int | None = None
        self.refused_by: list[str] = []  # accounts that answered 429, in order
        self.reply = ReplyChannel()
        self.registry = get_registry()
        self.lease: Lease | None = None
        self.attempt_id = ""
        self._body: bytes | StoredBody = task.body
        self.finished = False
        # The attempt's watch on its executor's gateway process and on Redis outages
        # (executors.liveness); None in embedded mode.
        self._watch: ProcessWatch | None = None
        self._pieces: list[bytes] = []
        self._next_seq = 0
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._deadline = loop.time() + settings.GEMPROXY_TOTAL_TIMEOUT

    async def start(self) -> ResponseHead:
        await self.reply.open()
        tried: set[str] = set()
        fallback: _Refusal | None = None
        failure: DispatchError | None = None  # the last attempt's; made only when needed (an exception is dear)
        rebound = False
        for attempt in range(settings.GEMPROXY_MAX_ATTEMPTS):
            # After an upstream error there is an answer to relay, so only an
            # executor that is free right now is worth a retry.
            wait = 0.0 if fallback else settings.GEMPROXY_DISPATCH_WAIT
            choice = await self._acquire(frozenset(tried), wait)
            lease = choice.lease
            if lease is not None and self.task.binder is not None:
                try:
                    choice = await self._bind(lease, frozenset(tried), wait)
                except _AttemptFailed as failed:
                    failure = failed.error
                    tried.add(lease.connection_id)
                    continue
                lease = choice.lease
            if lease is None:
                if choice.absent and fallback is None:
                    raise _account_absent()
                # An upstream's 5xx says more than our 429 would; its 429 says less.
                if choice.all_cooling and (fallback is None or fallback.head.status == 429):
                    raise self._cooling_down(choice)
                break
            tried.add(lease.connection_id)
            try:
                head = await self._attempt(lease)
            except _AttemptFailed as failed:
                failure = failed.error
                await self._abandon()
                continue
            if not rebound and await self._lost_a_copy(head):
                # The account lost a copy the body referred to: the binder forgot
                # it, and the next attempt (on this executor too) copies it again, once.
                rebound = True
                tried.discard(lease.connection_id)
                await self._abandon()
                continue
            if head.status == 429:
                await self._read_to_end()
                await self._cool_down(lease, head)
            if head.status not in RETRYABLE_STATUSES or attempt == settings.GEMPROXY_MAX_ATTEMPTS - 1:
                self._forget_the_request()
                return head
            await self._read_to_end()
            fallback = _Refusal(head, list(self._pieces), lease.account_label, lease.account_id)
            await self._abandon()
        if fallback is not None:
            self._pieces, self.finished, self.account_label = fallback.pieces, True, fallback.account_label
            self.account_id = fallback.account_id
            self._forget_the_request()
            return fallback.head
        raise failure or _unavailable("No executor is available to serve this request. Try again later.")

    def _forget_the_request(self) -> None:
        """An answer is chosen and no attempt follows: the body sent (and what binding parsed of it) can go.

        Kept, they would stay in memory as long as the answer streams: for a long
        prompt, more than everything else an open stream holds.
        """
        self._body = b""
        self.task = replace(self.task, body=b"", binder=None)

    async def _bind(self, lease: Lease, exclude: frozenset[str], wait: float) -> Choice:
        """Fit the body to the lease's account, then take a slot there again.

        The slot is given back meanwhile: copying files there is a call of its
        own through that account's executors, which may have a single slot.
        """
        assert self.task.binder is not None
        account = lease.account_id
        await self.registry.release(lease)
        try:
            self._body = await self.task.binder.body_for(account)
        except DispatchError as error:
            raise _AttemptFailed(error) from error
        give_up = min(self._loop.time() + max(wait, 1.0), self._deadline)
        while True:
            choice = await self.registry.choose(
                self.task.model, exclude, accounts=frozenset({account}), features=self.task.needs
            )
            if choice.lease is not None or choice.all_cooling or choice.absent:
                break
            remaining = give_up - self._loop.time()
            if remaining <= 0:
                break
            await self.registry.wait_for_change(remaining)
        if choice.lease is None:
            # That account went away or filled up while its copies were made; try another.
            raise _AttemptFailed(_unavailable("The executor chosen for this request is no longer available."))
        return choice

    async def _lost_a_copy(self, head: ResponseHead) -> bool:
        if self.task.binder is None or self.account_id is None or head.status not in (400, 403, 404):
            return False
        await self._read_to_end()
        return await self.task.binder.lost(self.account_id, head.status, b"".join(self._pieces))

    def _cooling_down(self, choice: Choice) -> CoolingDown:
        self.account_label = self.refused_by[-1] if self.refused_by else ""
        assert choice.cooling_until is not None  # all_cooling implies one
        return CoolingDown(self.task.model, choice.cooling_until - time.time())

    async def _cool_down(self, lease: Lease, head: ResponseHead) -> None:
        """Leave the refusing account out for this model as long as the upstream said, else the default."""
        self.refused_by.append(lease.account_label)
        said = upstream_delay(head.headers, b"".join(self._pieces)[:READ_LIMIT])
        seconds = settings.GEMPROXY_COOLDOWN if said is None else said
        await self.registry.cool_down(lease.account_id, self.task.model, seconds, lease.account_label)
        if said is not None and not any(name.lower() == "retry-after" for name in head.headers):
            # Relayed as it is, the answer then tells every client, not only the SDKs, when to come back.
            head.headers["Retry-After"] = str(max(1, math.ceil(said)))

    async def body(self) -> AsyncIterator[bytes]:
        """The response body, piece by piece as the executor sends it."""
        while self._pieces:
            yield self._pieces.pop(0)
        while not self.finished:
            frame = await self._frame(settings.GEMPROXY_IDLE_TIMEOUT, "The upstream stopped sending data.")
            piece = self._take(frame)
            if piece:
                yield piece

    async def close(self) -> None:
        """Cancel what is unfinished and free the slot; quick, because it runs after a disconnect too."""
        try:
            await self._abandon()
        finally:
            await self.reply.close()

    async def _acquire(self, exclude: frozenset[str], wait: float) -> Choice:
        """A lease, or the registry's word on why there is none: at once when waiting cannot help."""
        give_up = min(self._loop.time() + wait, self._deadline)
        task = self.task
        while True:
            choice = await self.registry.choose(
                task.model, exclude, accounts=task.accounts, prefer=task.prefer, features=task.needs
            )
            if choice.lease is not None or choice.all_cooling or choice.absent:
                return choice
            remaining = give_up - self._loop.time()
            if remaining <= 0:
                return choice
            if choice.cooling_until is not None:
                # The end of a cooldown frees an executor too, and nothing announces it.
                remaining = min(remaining, max(0.01, choice.cooling_until - time.time()))
            await self.registry.wait_for_change(remaining)

    async def _attempt(self, lease: Lease) -> ResponseHead:
        """Send the task to one executor; return its head once the first body piece is in."""
        self.lease, self.attempt_id, self.account_label = lease, new_id(), lease.account_label
        self.account_id = lease.account_id
        self.attempts += 1
        self._watch = watch_process(lease.process_id, self._loop.time)
        self.finished, self._pieces, self._next_seq = False, [], 0
        message = {
            "type": "executor.task",
            "attempt_id": self.attempt_id,
            "reply_channel": await self.reply.address_for(lease.channel_name),
            "method": self.task.method,
            "path": self.task.path,
            "query": self.task.query,
            "headers": self.task.headers,
            "body": b"",
            "request_id": self.task.request_id,
        }
        if isinstance(self._body, StoredBody):
            stored = self._body
            message["stored_body"] = {"name": stored.name, "offset": stored.offset, "length": stored.length}
        else:
            message["body"] = self._body
        await self.reply.send(lease.channel_name, message)
        try:
            frame = await self._frame(settings.GEMPROXY_ACK_TIMEOUT, "The executor did not acknowledge the task.")
        except DispatchError as error:
            raise _AttemptFailed(error) from error
        try:
            while frame["type"] == "ack":  # a repeated ack is harmless
                frame = await self._frame(settings.GEMPROXY_FIRST_BYTE_TIMEOUT, "The upstream did not answer in time.")
            piece = self._take(frame)  # an error frame before the response raises here
            if frame["type"] != "response_start":
                raise _unavailable(f"The executor answered {frame['type']!r} before a response.", "executor_lost")
            head = _head_of(frame)
            if piece:
                self._pieces.append(piece)
            while not self._pieces and not self.finished:
                frame = await self._frame(settings.GEMPROXY_FIRST_BYTE_TIMEOUT, "The upstream did not answer in time.")
                piece = self._take(frame)
                if piece:
                    self._pieces.append(piece)
        except DispatchError as error:
            if error.outcome == "timeout":
                raise  # a slow upstream would be as slow on another executor
            raise _AttemptFailed(error) from error
        return head

    async def _read_to_end(self) -> None:
        while not self.finished:
            piece = self._take(await self._frame(settings.GEMPROXY_IDLE_TIMEOUT, "The upstream stopped sending data."))
            if piece:
                self._pieces.append(piece)

    def _take(self, frame: dict) -> bytes:
        """Account for one body frame; the bytes it carries, if any."""
        kind = frame["type"]
        if kind == "response_start":
            self.finished = frame.get("end") is True
            return _body_of(frame) if "data" in frame else b""
        if kind == "response_body":
            if frame.get("seq") != self._next_seq:
                raise _unavailable("The executor sent the response out of order.", "executor_lost")
            self._next_seq += 1
            return _body_of(frame)
        if kind == "response_end":
            self.finished = True
            return b""
        if kind == "error":
            self.finished = True  # the executor is done with this attempt; no cancel needed
            code = frame.get("code", "internal")
            if code == "executor_lost":
                raise _unavailable("The executor serving this request disconnected.", "executor_lost")
            detail = str(frame.get("message", code))[: protocol.MAX_MESSAGE_LENGTH]
            raise _unavailable(f"The executor could not reach the upstream: {detail}", "upstream_error")
        return b""  # an ack or a frame type from a later protocol version

    async def _frame(self, seconds: float, on_timeout: str) -> dict:
        """The next frame of the current attempt; late frames of earlier attempts are dropped."""
        while True:
            remaining_total = self._deadline - self._loop.time()
            message = await self._next_message(min(seconds, remaining_total))
            if message is None:
                if remaining_total <= seconds:
                    raise _deadline_exceeded("The request took longer than the gateway's total time limit.")
                raise _deadline_exceeded(on_timeout)
            frame = message.get("frame") if isinstance(message, dict) else None
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                raise _malformed()
            if frame.get("id") == self.attempt_id:
                return frame

    async def _next_message(self, seconds: float) -> dict | None:
        """The next message within ``seconds``, or None; raises once the serving process is dead or the answer lost.

        Waits in slices between liveness checks, never cancelling the receive (see executors.reply).
        """
        give_up = self._loop.time() + seconds
        while True:
            remaining = give_up - self._loop.time()
            watch = self._watch
            message = await self.reply.next(remaining if watch is None else min(remaining, watch.due()))
            if message is not None:
                if watch is not None:
                    watch.heard()
                return message
            if self._loop.time() >= give_up:
                return None
            if watch is None:
                continue
            if await watch.dead():
                raise _unavailable(
                    "The gateway process holding the executor's connection stopped; try again.", "executor_lost"
                )
            if watch.lost_in_outage():
                raise _unavailable("The executor's answer was lost while Redis restarted; try again.", "executor_lost")

    async def _abandon(self) -> None:
        lease, self.lease = self.lease, None
        if lease is None:
            return
        try:
            if not self.finished:
                await self.reply.send(lease.channel_name, {"type": "executor.cancel", "attempt_id": self.attempt_id})
        finally:
            self.finished = True
            await self.registry.release(lease)
