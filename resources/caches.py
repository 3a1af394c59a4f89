"""Cached contents: gemproxy's own, created on one account, followed to another when the call moves.

A member's create request is validated and kept (``CachedContent.create_request``,
with gemproxy's file names); the cache is created on one account, and the
upstream's name for it there is a ``Placement`` expiring with it. A call that
names the cache is bound to it as to a file (``resources.binding``, with the
functions under "the cache as one kind of reference" below): an account holding
a live copy is preferred; on any other account, or after the upstream lost its
copy, the cache is created again from the kept request, with the expiry it has
left (``ensure_on_account``).

The cache's expiry is the proxy's (``CachedContent.expires_at``): every upstream
copy is asked for exactly that ``expireTime``, so a copy lives as long as the
cache and no longer.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
import weakref
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from accounts import usage
from accounts.usage import UsageEvent
from executors.dispatcher import DispatchError
from executors.registry import get_registry
from gateway.errors import ApiError, invalid_argument, not_found
from gateway.resources import quoted
from resources import placements, upstream
from resources.cache_requests import CreateRequest, cache_id_from, moment, strings
from resources.google_api import timestamp
from resources.models import CachedContent, Kind, Placement
from resources.references import Reference

# Kind's members read as tuples to mypy; the placement functions want the Kind itself.
CACHE = Kind("cachedContent")
# gemproxy's own upstream calls about caches; v1beta serves cachedContents on every account.
UPSTREAM_VERSION = "v1beta"
_UPSTREAM_NAME = re.compile(r"cachedContents/[A-Za-z0-9_-]{1,200}")
# A copy this close to its end is not bound to a call: it could vanish during it.
BIND_MARGIN = timedelta(seconds=5)


# Where copies live.


def _copies(cache_id: str, margin: timedelta = timedelta(0)) -> list[Placement]:
    return list(
        Placement.objects.filter(
            kind=Kind.CACHED_CONTENT, resource_id=cache_id, expires_at__gt=timezone.now() + margin
        ).order_by("created_at")
    )


_acopies = sync_to_async(_copies)


def accounts_holding(cache: CachedContent) -> frozenset[int]:
    """The accounts holding a live upstream copy of ``cache``."""
    return frozenset(placement.account_id for placement in _copies(cache.id))


async def reachable_accounts() -> frozenset[int]:
    """The accounts with an executor connected now."""
    return frozenset(row["account_id"] for row in await get_registry().snapshot())


def _pick(candidates: frozenset[int], prefer: frozenset[int]) -> int | None:
    preferred = candidates & prefer
    pool = preferred or candidates
    return min(pool) if pool else None


# Calls to the upstream.


def upstream_error(answer: upstream.UpstreamAnswer) -> ApiError:
    """The upstream's refusal, in its own words, as the member would have had it from Google."""
    if answer.status < 400:  # not an answer Google gives to a create; no client should follow it
        return ApiError(503, "UNAVAILABLE", f"The upstream answered {answer.status}.", outcome="upstream_error")
    try:
        error = answer.json()["error"]
        return ApiError(
            answer.status,
            str(error.get("status") or "UNKNOWN"),
            str(error.get("message") or f"The upstream answered {answer.status}."),
            details=error.get("details") if isinstance(error.get("details"), list) else None,
            outcome="upstream_error",
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return ApiError(503, "UNAVAILABLE", f"The upstream answered {answer.status}.", outcome="upstream_error")


def _refers_to_files(body: dict) -> bool:
    return any(text in ("fileUri", "file_uri") for text in strings(body))


async def file_names_in(body: dict, owner_id: int, origins: Collection[str]) -> list[str]:
    """Rewrite ``body``'s references to the proxy's files as ``files/{id}`` (in place); their ids.

    A stored create request names files as gemproxy does, so that re-creating it
    later needs no origin. Google's refusal for a file the member may not use.
    The references and the files are the files' work (resources.references),
    imported here so that caches without files need neither.
    """
    if not _refers_to_files(body):
        return []
    try:
        from resources import references  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        raise invalid_argument("Cached contents that refer to files are not served by this gateway yet.") from None
    found = references.file_references(body, origins)
    for reference in found:
        reference.holder[reference.key] = f"files/{reference.resource_id}"
    ids = [reference.resource_id for reference in found]
    if ids:
        await references.owned_files(ids, owner_id)
    return ids


async def _files_on(cache: CachedContent, account_id: int, body: dict) -> dict:
    """``body`` (a copy) with its files rewritten to that account's copies, replicated there first."""
    if not _refers_to_files(body):
        return body
    from resources import references, replication  # type: ignore[attr-defined,unused-ignore]

    found = references.file_references(body, ())
    owned = await references.owned_files([reference.resource_id for reference in found], cache.owner_id)
    held = await replication.ensure_files_on(account_id, list(owned.values()))
    for reference in found:
        placement = held[reference.resource_id]
        reference.holder[reference.key] = placement.upstream_uri or placement.upstream_name
    return body


async def _create_upstream(
    cache: CachedContent, account_id: int | None, prefer: frozenset[int]
) -> tuple[Placement, str]:
    """Create ``cache`` on an account (``account_id``, or the dispatcher's choice); the copy and its account's label."""
    body: dict[str, Any] = {
        **copy.deepcopy(cache.create_request),  # its file references are rewritten per account
        "model": cache.model,
        "expireTime": timestamp(cache.expires_at),
    }
    if cache.display_name:
        body["displayName"] = cache.display_name
    if account_id is not None:
        body = await _files_on(cache, account_id, body)
    try:
        answer = await upstream.call(
            "POST",
            f"/{UPSTREAM_VERSION}/cachedContents",
            body=json.dumps(body, separators=(",", ":")).encode(),
            accounts=None if account_id is None else frozenset({account_id}),
            prefer=prefer,
            model=cache.model.removeprefix("models/"),
        )
    except DispatchError as error:
        raise ApiError.from_dispatch(error) from None
    if not answer.ok:
        raise upstream_error(answer)
    # An executor's answer is read as hostile: only a well-formed name and count are kept.
    try:
        created = answer.json()
    except ValueError:
        created = None
    name = created.get("name") if isinstance(created, dict) else None
    if not isinstance(name, str) or not _UPSTREAM_NAME.fullmatch(name):
        raise ApiError(503, "UNAVAILABLE", "The upstream answered a cached content without a valid name.")
    assert isinstance(created, dict)
    try:
        expires_at = moment(created.get("expireTime"))
    except ApiError:
        expires_at = cache.expires_at
    usage_metadata = created.get("usageMetadata")
    total = usage_metadata.get("totalTokenCount") if isinstance(usage_metadata, dict) else None
    if type(total) is int or (isinstance(total, str) and total.isdigit() and len(total) < 19):
        cache.usage_metadata = {"totalTokenCount": int(total)}
    return await _remember(cache, answer.account_id, name, expires_at), answer.account_label


@sync_to_async
def _remember(cache: CachedContent, account_id: int, upstream_name: str, expires_at: datetime) -> Placement:
    with transaction.atomic():
        if cache._state.adding:
            cache.save()
        placement, _ = Placement.objects.update_or_create(
            kind=Kind.CACHED_CONTENT,
            resource_id=cache.id,
            account_id=account_id,
            defaults={"upstream_name": upstream_name, "expires_at": expires_at},
        )
    return placement


async def create(
    owner_id: int,
    key_id: int | None,
    request: CreateRequest,
    origins: Collection[str] = (),
    prefer: frozenset[int] = frozenset(),
) -> tuple[CachedContent, str]:
    """Keep the member's cache and create it on one account; the cache and that account's label.

    ``origins``: those a full file uri of this gateway may carry. The upstream's
    refusal (too small, unknown model...) is raised as the member's answer, and nothing is kept.
    """
    now = request.received_at
    file_ids = await file_names_in(request.stored, owner_id, origins)
    cache = CachedContent(
        owner_id=owner_id,
        key_id=key_id,
        model=request.model,
        display_name=request.display_name,
        create_request=request.stored,
        created_at=now,
        updated_at=now,
        expires_at=request.expires_at,
    )
    account_id: int | None = None
    if file_ids:
        # Files are copied to an account before the cache is made there, so it is chosen first:
        # one that holds them all already, if one is connected.
        reachable = await reachable_accounts()
        holding = await placements.aholding_all(Kind("file"), file_ids)
        account_id = _pick(reachable & holding, prefer) or _pick(reachable, prefer)
        if account_id is None:
            raise ApiError(503, "UNAVAILABLE", "No executor is connected to create the cached content on.")
    _, account_label = await _create_upstream(cache, account_id, prefer)
    return cache, account_label


# Keeping a copy where the call goes.

# One lock per (cache, account) while anyone waits on it: two calls at once make one copy, not two.
_creating: weakref.WeakValueDictionary[tuple[str, int], asyncio.Lock] = weakref.WeakValueDictionary()


async def ensure_on_account(cache: CachedContent, account_id: int) -> str:
    """The upstream name of a live copy of ``cache`` on that account, created there now if it has none."""
    return (await _ensure_placement(cache, account_id)).upstream_name


async def _ensure_placement(cache: CachedContent, account_id: int) -> Placement:
    lock = _creating.get((cache.id, account_id))
    if lock is None:
        lock = _creating[(cache.id, account_id)] = asyncio.Lock()
    async with lock:
        for placement in await _acopies(cache.id, BIND_MARGIN):
            if placement.account_id == account_id:
                return placement
        if cache.expires_at <= timezone.now() + BIND_MARGIN:
            raise absent(cache.name)
        started = time.monotonic()
        placement, account_label = await _create_upstream(cache, account_id, frozenset({account_id}))
        await usage.arecord(
            UsageEvent(
                outcome="ok",
                method="cachedContents.recreate",
                model=cache.model.removeprefix("models/"),
                status_code=200,
                user_id=cache.owner_id,
                key_id=cache.key_id,
                executor_account=account_label,
                latency_ms=int((time.monotonic() - started) * 1000),
            )
        )
        return placement


def absent(name: str) -> ApiError:
    # Another member's cache is as absent as one that never was: one answer for both.
    return not_found(f"CachedContent not found (or permission denied): {name}.")


# The cache as one kind of reference in resources.binding, the relay's binding of a call to what it names.

CACHE_MARKERS = (b"cachedContent", b"cached_content")
_INNER_REQUEST = ("generateContentRequest", "generate_content_request")


def cache_references(body: Any, origins: Collection[str] = ()) -> list[Reference]:
    """Where a generateContent, streamGenerateContent or countTokens body names a cache.

    At its top or inside countTokens' ``generateContentRequest``; a name that
    cannot be a cache's is refused. ``origins`` is unused: a cache has no uri.
    """
    if not isinstance(body, dict):
        return []
    holders = [body, *(inner for name in _INNER_REQUEST if isinstance(inner := body.get(name), dict))]
    found = []
    for holder in holders:
        for key in ("cachedContent", "cached_content"):
            if holder.get(key) is not None:
                cache_id = cache_id_from(holder[key])
                if cache_id is None:
                    raise invalid_argument(
                        f"Invalid cached content name {quoted(str(holder[key]))}; expected cachedContents/{{id}}."
                    )
                found.append(Reference(cache_id, holder, key))
    return found


def _owned_live(member_id: int, ids: list[str]) -> dict[str, CachedContent]:
    rows = CachedContent.objects.filter(owner_id=member_id, id__in=ids, expires_at__gt=timezone.now())
    return {cache.id: cache for cache in rows}


async def owned_caches(ids: Collection[str], member_id: int) -> dict[str, CachedContent]:
    """The member's live caches by id; one that is not theirs, or not live, is not found."""
    found = await sync_to_async(_owned_live)(member_id, sorted(set(ids)))
    for cache_id in ids:
        if cache_id not in found:
            raise absent(f"cachedContents/{cache_id}")
    return found


async def ensure_caches_on(account_id: int, held: Sequence[CachedContent]) -> dict[str, Placement]:
    """Cache id -> its live placement on ``account_id``, created there now where it has none."""
    return {cache.id: await _ensure_placement(cache, account_id) for cache in held}


# Changes the member makes.


async def push_expiry(cache: CachedContent) -> None:
    """Give every upstream copy the cache's expiry; a copy that cannot be reached or is lost is forgotten."""
    reachable = await reachable_accounts()
    for placement in await _acopies(cache.id):
        kept = placement.account_id in reachable and await _patch_copy(placement, cache.expires_at)
        if kept:
            placement.expires_at = cache.expires_at
            await sync_to_async(placement.save)(update_fields=["expires_at"])
        else:
            await sync_to_async(placement.delete)()


async def _patch_copy(placement: Placement, expires_at: datetime) -> bool:
    try:
        answer = await upstream.call(
            "PATCH",
            f"/{UPSTREAM_VERSION}/{placement.upstream_name}",
            body=json.dumps({"expireTime": timestamp(expires_at)}).encode(),
            accounts=frozenset({placement.account_id}),
        )
    except DispatchError:
        return False
    return answer.ok and answer.account_id == placement.account_id


async def delete_copies(cache_id: str, copies: list[Placement]) -> None:
    """Delete the upstream copies that can be reached; the others end at the cache's expiry, as asked."""
    reachable = await reachable_accounts()
    for placement in copies:
        if placement.account_id in reachable:
            try:
                await upstream.call(
                    "DELETE",
                    f"/{UPSTREAM_VERSION}/{placement.upstream_name}",
                    accounts=frozenset({placement.account_id}),
                )
            except DispatchError:
                pass
    await sync_to_async(Placement.objects.filter(kind=Kind.CACHED_CONTENT, resource_id=cache_id).delete)()


def copies_of(cache: CachedContent) -> list[Placement]:
    """Every placement of ``cache``, live or not (for deleting them)."""
    return list(Placement.objects.filter(kind=Kind.CACHED_CONTENT, resource_id=cache.id))


def delete_expired() -> int:
    """Delete the caches past their expiry, and their placements; how many caches went.

    Their upstream copies end by themselves at the same moment (each was asked
    for the cache's own expireTime), so nothing is called upstream. For a sweep
    (the files' sweep may call it too).
    """
    with transaction.atomic():
        expired = list(CachedContent.objects.filter(expires_at__lte=timezone.now()).values_list("id", flat=True))
        Placement.objects.filter(kind=CACHE, resource_id__in=expired).delete()
        CachedContent.objects.filter(id__in=expired).delete()
    return len(expired)
