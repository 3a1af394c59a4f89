"""Replication on use: copy a member's stored files onto an executor account, through that account's executor.

``ensure_files_on(account, files)`` answers each file's live placement on the
account, uploading the missing ones with Google's resumable protocol: a start
call, then the bytes in 8 MiB chunks, each its own task whose body the
consumer reads from storage (``StoredBody``), so neither the channel layer nor
any process holds a file whole; then it waits for the copy to be ACTIVE and
remembers it in ``resources.placements``. Every call goes to executors of that
account only (``Task.accounts``): a file uploaded with one account's key is
invisible to every other. Concurrent calls needing the same copy upload it once:
in one process they share the upload, across processes ``copy_claims`` lets one
copy while the others wait for its placement.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from django.utils.dateparse import parse_datetime

from accounts import usage
from accounts.usage import UsageEvent
from executors.dispatcher import DispatchError, StoredBody
from executors.task_checks import path_problem, query_problem
from resources import placements
from resources.copy_claims import get_copy_claims
from resources.models import Kind, Placement, StoredFile
from resources.upstream import UpstreamAnswer, call

log = logging.getLogger(__name__)

# By value rather than Kind.FILE, which mypy (without the Django plugin) takes for the member's tuple.
FILE = Kind("file")

API_VERSION = "v1beta"
# Google's SDKs upload in chunks of this size; one chunk is one task, which bounds an executor's memory.
CHUNK_BYTES = 8 * 1024 * 1024
# How long a copy may stay PROCESSING upstream before the call using it gives up, and how often to ask.
ACTIVE_TIMEOUT_SECONDS = 300.0
POLL_FIRST_SECONDS = 0.1
POLL_MAX_SECONDS = 2.0
# A claim outlives any copy (2 GiB at a few MB/s) yet frees itself if its process dies.
CLAIM_SECONDS = 1800.0
CLAIM_POLL_SECONDS = 0.25
# The usage record's method for a copy made on a member's behalf.
REPLICATION_METHOD = "files.replicate"

# (file id, account id) -> the upload in progress, so that concurrent calls in this process upload once.
_uploads: dict[tuple[str, int], asyncio.Task[Placement]] = {}


class ReplicationFailed(DispatchError):
    """A file could not be copied to the account; the call may be tried on another one."""

    def __init__(self, stored: StoredFile, why: str) -> None:
        super().__init__(
            503, "UNAVAILABLE", f"{stored.name} could not be copied to an executor account: {why}", "upstream_error"
        )


async def ensure_files_on(account_id: int, files: Sequence[StoredFile]) -> dict[str, Placement]:
    """File id -> its live placement on ``account_id``, uploading there the files it does not hold yet."""
    held = (await placements.aholding(FILE, [stored.id for stored in files])).get(account_id, {})
    found: dict[str, Placement] = {}
    for stored in files:
        placement = held.get(stored.id)
        found[stored.id] = placement if placement is not None else await _copy_once(account_id, stored)
    return found


async def _copy_once(account_id: int, stored: StoredFile) -> Placement:
    key = (stored.id, account_id)
    upload = _uploads.get(key)
    if upload is None:
        upload = asyncio.ensure_future(_copy(account_id, stored))
        _uploads[key] = upload
        upload.add_done_callback(lambda _: _uploads.pop(key, None))
    # Shielded: one caller going away must not cancel the copy the others wait for.
    return await asyncio.shield(upload)


async def _copy(account_id: int, stored: StoredFile) -> Placement:
    claims = get_copy_claims()
    name = f"{stored.id}:{account_id}"
    loop = asyncio.get_running_loop()
    give_up = loop.time() + ACTIVE_TIMEOUT_SECONDS
    while (token := await claims.claim(name, CLAIM_SECONDS)) is None:
        # Another gateway process is copying it: its placement appears when it is done.
        await asyncio.sleep(CLAIM_POLL_SECONDS)
        placement = await placements.aon_account(FILE, stored.id, account_id)
        if placement is not None:
            return placement
        if loop.time() > give_up:
            raise ReplicationFailed(stored, "another gateway process is still copying it")
    try:
        # Copied meanwhile, by the claim's previous holder: the placement map is the truth.
        placement = await placements.aon_account(FILE, stored.id, account_id)
        return placement if placement is not None else await _upload(account_id, stored)
    finally:
        await claims.release(name, token)


async def _upload(account_id: int, stored: StoredFile) -> Placement:
    """Copy it, recording the copy as a usage event of its owner (bytes moved, account, outcome)."""
    event = UsageEvent(
        outcome="ok",
        method=REPLICATION_METHOD,
        user_id=stored.owner_id,
        key_id=stored.key_id,
        request_bytes=stored.size_bytes,
    )
    started = time.monotonic()
    try:
        placement = await _copy_through(account_id, stored, event)
    except DispatchError as error:
        event.outcome, event.status_code = error.outcome, error.http_status
        raise
    except BaseException:
        event.outcome = "gateway_error"
        raise
    finally:
        event.latency_ms = int((time.monotonic() - started) * 1000)
        await usage.arecord(event)
    return placement


async def _copy_through(account_id: int, stored: StoredFile, event: UsageEvent) -> Placement:
    accounts = frozenset({account_id})
    path, query, event.executor_account = await _start_upload(stored, accounts)
    resource = await _send_bytes(stored, accounts, path, query)
    resource = await _wait_until_active(stored, accounts, resource)
    event.status_code = 200
    expires = resource.get("expirationTime")
    placement = await placements.aremember(
        FILE,
        stored.id,
        account_id,
        upstream_name=str(resource["name"]),
        upstream_uri=str(resource.get("uri", "")),
        expires_at=parse_datetime(expires) if isinstance(expires, str) else None,
    )
    log.info("copied %s (%d bytes) to account %s as %s", stored.name, stored.size_bytes, account_id, resource["name"])
    return placement


async def _start_upload(stored: StoredFile, accounts: frozenset[int]) -> tuple[str, str, str]:
    metadata = {"file": {"display_name": f"gemproxy {stored.name}", "mime_type": stored.mime_type}}
    answer = await call(
        "POST",
        f"/upload/{API_VERSION}/files",
        body=json.dumps(metadata).encode(),
        headers={
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": str(stored.size_bytes),
            "x-goog-upload-header-content-type": stored.mime_type,
        },
        accounts=accounts,
    )
    _expect_ok(stored, answer, "starting the upload")
    url = urlsplit(answer.headers.get("x-goog-upload-url", ""))
    # Only its path and query are used: the executor sends them to its own upstream.
    if path_problem(url.path) or query_problem(url.query) or not url.path.startswith("/upload/"):
        raise ReplicationFailed(stored, "the upstream answered no usable upload URL")
    return url.path, url.query, answer.account_label


async def _send_bytes(stored: StoredFile, accounts: frozenset[int], path: str, query: str) -> dict:
    size = stored.size_bytes
    offset = 0
    while True:
        length = min(CHUNK_BYTES, size - offset)
        last = offset + length >= size
        answer = await call(
            "POST",
            path,
            query=query,
            body=StoredBody(stored.storage_name, offset, length),
            headers={
                "content-type": "application/octet-stream",
                "x-goog-upload-command": "upload, finalize" if last else "upload",
                "x-goog-upload-offset": str(offset),
            },
            accounts=accounts,
        )
        _expect_ok(stored, answer, f"uploading bytes from {offset}")
        offset += length
        if last:
            break
    if answer.headers.get("x-goog-upload-status") != "final":
        raise ReplicationFailed(stored, "the upstream did not finalize the upload")
    resource = _json(answer).get("file")
    if not isinstance(resource, dict) or not isinstance(resource.get("name"), str):
        raise ReplicationFailed(stored, "the upstream's answer names no file")
    return resource


async def _wait_until_active(stored: StoredFile, accounts: frozenset[int], resource: dict) -> dict:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + ACTIVE_TIMEOUT_SECONDS
    pause = POLL_FIRST_SECONDS
    while resource.get("state", "ACTIVE") != "ACTIVE":
        if resource.get("state") == "FAILED":
            raise ReplicationFailed(stored, "the upstream failed to process it")
        if loop.time() > give_up:
            raise ReplicationFailed(
                stored, f"it was still {resource.get('state')} upstream after {ACTIVE_TIMEOUT_SECONDS:.0f} s"
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, POLL_MAX_SECONDS)
        answer = await call("GET", f"/{API_VERSION}/{resource['name']}", accounts=accounts)
        _expect_ok(stored, answer, "asking for its state")
        resource = {**resource, **_json(answer)}
    return resource


def _expect_ok(stored: StoredFile, answer: UpstreamAnswer, step: str) -> None:
    if answer.status != 200:
        raise ReplicationFailed(stored, f"the upstream answered {answer.status} when {step}")


def _json(answer: UpstreamAnswer) -> dict:
    try:
        parsed = answer.json()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
