"""Cached contents: gemproxy's own, created on one account, followed to another when the call moves.

A member's create request is validated and kept (``CachedContent.create_request``,
with gemproxy's file names); the cache is created on one account, and the
upstream's name for it there is a ``Placement`` expiring with it. A call that
names the cache (``bind_cache``) is bound to an account holding a live copy;
when none is reachable, or the upstream lost its copy, the cache is created
again from the kept request, with the expiry it has left (``ensure_on_account``).

The cache's expiry is the proxy's (``CachedContent.expires_at``): every upstream
copy is asked for exactly that ``expireTime``, so a copy lives as long as the
cache and no longer.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from accounts import usage
from accounts.usage import UsageEvent
from executors.dispatcher import CoolingDown, DispatchError
from executors.registry import get_registry
from gateway.errors import ApiError, invalid_argument, not_found, quota_exhausted
from gateway.resources import MODEL_ID, quoted
from resources import upstream
from resources.google_api import timestamp
from resources.models import CachedContent, Kind, Placement, StoredFile

DEFAULT_TTL = timedelta(hours=1)
# gemproxy's own upstream calls about caches; v1beta serves cachedContents on every account.
UPSTREAM_VERSION = "v1beta"
MAX_DISPLAY_NAME = 128
# A copy this close to its end is not bound to a call: it could vanish during it.
BIND_MARGIN = timedelta(seconds=5)
# Set by the expiry, never copied from the member's body to an upstream.
_EXPIRY_FIELDS = ("ttl", "expireTime", "expire_time")
_NOT_STORED = (*_EXPIRY_FIELDS, "name", "model", "displayName", "display_name", "usageMetadata", "usage_metadata")
_DURATION = re.compile(r"(\d{1,12})(?:\.(\d{1,9}))?s")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)")
_NAME = re.compile(r"cachedContents/([a-z0-9]{1,40})")


# Reading what members send.


def _field(body: dict, camel: str) -> Any:
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)
    return body[camel] if camel in body else body.get(snake)


def _duration(raw: Any) -> timedelta:
    match = _DURATION.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        raise invalid_argument(
            f"Invalid value at 'cached_content.ttl' (type.googleapis.com/google.protobuf.Duration), {quoted(str(raw))}"
        )
    nanos = int((match.group(2) or "0").ljust(9, "0"))
    return timedelta(seconds=int(match.group(1)), microseconds=nanos // 1000)


def _moment(raw: Any) -> datetime:
    try:
        if not isinstance(raw, str) or not _TIMESTAMP.fullmatch(raw):
            raise ValueError(raw)
        whole, _, fraction = raw.replace("Z", "+00:00").partition(".")
        if fraction:  # Python reads at most microseconds
            digits, offset = fraction[:-6], fraction[-6:]
            whole += "." + digits[:6].ljust(6, "0") + offset
        return datetime.fromisoformat(whole).astimezone(UTC)
    except ValueError:
        raise invalid_argument(
            "Invalid value at 'cached_content.expire_time' (type.googleapis.com/google.protobuf.Timestamp), "
            f"{quoted(str(raw))}"
        ) from None


def expiry_from(body: dict, now: datetime, *, default: timedelta | None) -> datetime:
    """The expiry that ``ttl`` or ``expireTime`` asks for; ``default`` from now when neither is set."""
    ttl, expire_time = _field(body, "ttl"), _field(body, "expireTime")
    if ttl is not None and expire_time is not None:
        raise invalid_argument("Only one of ttl or expire_time can be set.")
    try:
        if ttl is not None:
            expiry = now + _duration(ttl)
        elif expire_time is not None:
            expiry = _moment(expire_time)
        elif default is not None:
            expiry = now + default
        else:
            raise invalid_argument("Either ttl or expire_time must be set to update a CachedContent.")
    except OverflowError:
        raise invalid_argument("The expiry of the cached content is out of range.") from None
    if expiry <= now:
        raise invalid_argument("expire_time must be in the future.")
    return expiry


def _strings(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


@dataclass(frozen=True)
class CreateRequest:
    model: str  # "models/gemini-2.5-flash"
    display_name: str
    expires_at: datetime
    stored: dict  # what is kept, and sent again on every re-creation
    received_at: datetime  # the cache's createTime: its ttl counts from here


def read_create_request(body: dict, now: datetime) -> CreateRequest:
    """The member's create request, validated; refused in Google's words when it cannot be one."""
    model = _field(body, "model")
    if not isinstance(model, str) or not model:
        raise invalid_argument("CachedContent.model is required.")
    model_id = model.removeprefix("models/")
    if not MODEL_ID.fullmatch(model_id):
        raise invalid_argument(f"Invalid model name {quoted(model)} for a cached content.")
    display_name = _field(body, "displayName")
    if display_name is None:
        display_name = ""
    if not isinstance(display_name, str) or len(display_name) > MAX_DISPLAY_NAME:
        raise invalid_argument(f"display_name must be a string of at most {MAX_DISPLAY_NAME} characters.")
    # PostgreSQL keeps no NUL character in JSON text; refusing it here beats a 500 at the INSERT.
    if any("\x00" in text for text in _strings(body)):
        raise invalid_argument("Invalid JSON payload received. A cached content may not hold NUL (\\u0000) characters.")
    expires_at = expiry_from(body, now, default=DEFAULT_TTL)
    stored = {name: value for name, value in body.items() if name not in _NOT_STORED}
    return CreateRequest(f"models/{model_id}", display_name, expires_at, stored, now)


def shape(cache: CachedContent) -> dict[str, Any]:
    """Google's CachedContent, under gemproxy's name: never an upstream's."""
    shown: dict[str, Any] = {
        "name": cache.name,
        "model": cache.model,
        "createTime": timestamp(cache.created_at),
        "updateTime": timestamp(cache.updated_at),
        "expireTime": timestamp(cache.expires_at),
    }
    if cache.display_name:
        shown["displayName"] = cache.display_name
    total = (cache.usage_metadata or {}).get("totalTokenCount")
    if total is not None:
        shown["usageMetadata"] = {"totalTokenCount": int(total)}
    return shown


def cache_id_from(name: Any) -> str | None:
    """The id in ``cachedContents/{id}``; None when ``name`` is no such name."""
    match = _NAME.fullmatch(name) if isinstance(name, str) else None
    return match.group(1) if match else None


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


def _dispatch_error(error: DispatchError) -> ApiError:
    if isinstance(error, CoolingDown):
        return quota_exhausted(error.model, error.seconds, error.retry_after)
    return ApiError(error.http_status, error.status, error.message, outcome=error.outcome)


def upstream_error(answer: upstream.UpstreamAnswer) -> ApiError:
    """The upstream's refusal, in its own words, as the member would have had it from Google."""
    try:
        error = answer.json()["error"]
        return ApiError(
            answer.status,
            str(error.get("status") or "UNKNOWN"),
            str(error.get("message") or ""),
            details=error.get("details") if isinstance(error.get("details"), list) else None,
            outcome="upstream_error",
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return ApiError(502, "UNAVAILABLE", f"The upstream answered {answer.status}.", outcome="upstream_error")


def lost_upstream(status: int, body: bytes) -> bool:
    """Whether an upstream answer says its copy of a cache is gone (403 or 404 about a cached content)."""
    if status not in (403, 404):
        return False
    try:
        message = str(json.loads(body)["error"]["message"]).lower()
    except (ValueError, KeyError, TypeError):
        return False
    return "cachedcontent" in message or "cached content" in message


def _owned_files(owner_id: int, ids: list[str]) -> list[StoredFile]:
    return list(StoredFile.objects.filter(owner_id=owner_id, id__in=ids))


async def _files_on(cache: CachedContent, account_id: int, body: dict) -> dict:
    """``body`` with its file references rewritten to that account's copies, replicated there first.

    The replication and the references are the files' work (resources.replication,
    resources.references), imported here so that caches without files need neither.
    """
    if not any(text in ("fileData", "file_data", "fileUri", "file_uri") for text in _strings(body)):
        return body
    try:
        from resources import references, replication  # type: ignore[attr-defined]
    except ImportError:
        raise invalid_argument("Cached contents that refer to files are not served by this gateway yet.") from None
    wanted = list(references.find(body))
    files: list[StoredFile] = await sync_to_async(_owned_files)(cache.owner_id, wanted)
    if len({stored.id for stored in files}) < len(set(wanted)):
        raise ApiError(403, "PERMISSION_DENIED", "You do not have permission to access a File of this request.")
    placements = replication.ensure_files_on(account_id, files)
    if inspect.isawaitable(placements):
        placements = await placements
    return references.rewrite(body, placements)


async def _create_upstream(
    cache: CachedContent, account_id: int | None, prefer: frozenset[int]
) -> tuple[Placement, str]:
    """Create ``cache`` on an account (``account_id``, or the dispatcher's choice); the copy and its account's label."""
    body: dict[str, Any] = {**cache.create_request, "model": cache.model, "expireTime": timestamp(cache.expires_at)}
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
        raise _dispatch_error(error) from None
    if not answer.ok:
        raise upstream_error(answer)
    created = answer.json()
    name = created.get("name") if isinstance(created, dict) else None
    if not isinstance(name, str) or not name.startswith("cachedContents/"):
        raise ApiError(502, "UNAVAILABLE", "The upstream answered a cached content without a name.")
    try:
        expires_at = _moment(created.get("expireTime"))
    except ApiError:
        expires_at = cache.expires_at
    if isinstance(created.get("usageMetadata"), dict):
        cache.usage_metadata = created["usageMetadata"]
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
    owner_id: int, key_id: int | None, request: CreateRequest, prefer: frozenset[int] = frozenset()
) -> tuple[CachedContent, str]:
    """Keep the member's cache and create it on one account; the cache and that account's label.

    The upstream's refusal (too small, unknown model...) is raised as the member's answer, and nothing is kept.
    """
    now = request.received_at
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
    if any(text in ("fileData", "file_data") for text in _strings(request.stored)):
        # Files are copied to an account before the cache is made there: it must be chosen first.
        account_id = _pick(await reachable_accounts(), prefer)
        if account_id is None:
            raise ApiError(503, "UNAVAILABLE", "No executor is connected to create the cached content on.")
    _, account_label = await _create_upstream(cache, account_id, prefer)
    return cache, account_label


# Keeping a copy where the call goes.

# One lock per (cache, account) while anyone waits on it: two calls at once make one copy, not two.
_creating: weakref.WeakValueDictionary[tuple[str, int], asyncio.Lock] = weakref.WeakValueDictionary()


async def ensure_on_account(cache: CachedContent, account_id: int) -> str:
    """The upstream name of a live copy of ``cache`` on that account, created there now if it has none."""
    lock = _creating.get((cache.id, account_id))
    if lock is None:
        lock = _creating[(cache.id, account_id)] = asyncio.Lock()
    async with lock:
        for placement in await _acopies(cache.id, BIND_MARGIN):
            if placement.account_id == account_id:
                return placement.upstream_name
        if cache.expires_at <= timezone.now() + BIND_MARGIN:
            raise absent(cache.name)
        started = time.monotonic()
        placement, account_label = await _create_upstream(cache, account_id, frozenset({account_id}))
        usage.record(
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
        return placement.upstream_name


def absent(name: str) -> ApiError:
    # Another member's cache is as absent as one that never was: one answer for both.
    return not_found(f"CachedContent not found (or permission denied): {name}.")


@dataclass(frozen=True)
class CacheBinding:
    """A call's ``cachedContent`` bound to one account's copy: send ``apply(body)`` there, and only there."""

    cache: CachedContent
    account_id: int
    upstream_name: str
    field: str  # the spelling the member used: "cachedContent" or "cached_content"

    @property
    def accounts(self) -> frozenset[int]:
        return frozenset({self.account_id})

    def apply(self, body: dict) -> dict:
        return {**body, self.field: self.upstream_name}


@sync_to_async
def _owned_cache(member_id: int, cache_id: str) -> CachedContent | None:
    return CachedContent.objects.filter(owner_id=member_id, id=cache_id, expires_at__gt=timezone.now()).first()


async def bind_cache(body: dict, member, prefer: frozenset[int] = frozenset()) -> CacheBinding | None:
    """Bind a generateContent's ``cachedContent`` to an account; None when the body names no cache.

    ``member`` is the caller's user (or its id): only their own caches can be named.

    A reachable account that holds a live copy is taken (among ``prefer`` first);
    with none, the cache is created again on a reachable account.
    """
    spelling = "cachedContent" if "cachedContent" in body else "cached_content"
    name = body.get(spelling)
    if name is None:
        return None
    cache_id = cache_id_from(name)
    if cache_id is None:
        raise invalid_argument(f"Invalid cached content name {quoted(str(name))}; expected cachedContents/{{id}}.")
    cache = await _owned_cache(getattr(member, "pk", member), cache_id)
    if cache is None:
        raise absent(f"cachedContents/{cache_id}")
    reachable = await reachable_accounts()
    held = {p.account_id: p.upstream_name for p in await _acopies(cache.id, BIND_MARGIN) if p.account_id in reachable}
    account_id = _pick(frozenset(held), prefer)
    if account_id is not None:
        return CacheBinding(cache, account_id, held[account_id], spelling)
    account_id = _pick(reachable, prefer)
    if account_id is None:
        raise ApiError(503, "UNAVAILABLE", f"No executor is connected to serve {cache.name}.", outcome="unavailable")
    return CacheBinding(cache, account_id, await ensure_on_account(cache, account_id), spelling)


async def bind_request(body: bytes, member, prefer: frozenset[int] = frozenset()) -> tuple[bytes, CacheBinding | None]:
    """For the relay: a generateContent, streamGenerateContent or countTokens body bound to its cache's account.

    ``body`` is the checked request body (a JSON object). Answers it unchanged with
    None when it names no cache (found without parsing: this is the hot path),
    else the body to send and the binding, whose ``accounts`` the task must keep to.
    countTokens may name the cache inside ``generateContentRequest``.
    """
    if b"cachedContent" not in body and b"cached_content" not in body:
        return body, None
    parsed = json.loads(body)
    inner_field = next((f for f in ("generateContentRequest", "generate_content_request") if f in parsed), None)
    inner = parsed.get(inner_field) if inner_field else None
    target = inner if isinstance(inner, dict) else parsed
    binding = await bind_cache(target, member, prefer)
    if binding is None:
        return body, None
    bound = {**parsed, inner_field: binding.apply(target)} if target is not parsed else binding.apply(parsed)
    return json.dumps(bound, separators=(",", ":"), ensure_ascii=False).encode(), binding


async def rebind_lost(binding: CacheBinding, prefer: frozenset[int] = frozenset()) -> CacheBinding:
    """The upstream lost its copy (``lost_upstream``): forget it, and bind the call again (re-created)."""
    await sync_to_async(
        Placement.objects.filter(
            kind=Kind.CACHED_CONTENT, resource_id=binding.cache.id, account_id=binding.account_id
        ).delete
    )()
    rebound = await bind_cache({binding.field: binding.cache.name}, binding.cache.owner_id, prefer)
    assert rebound is not None  # the body names the cache
    return rebound


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
