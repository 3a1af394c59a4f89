"""The stand-in's cachedContents API, per API key (one key is one Google account), as Google keeps them.

- ``POST /{v}/cachedContents`` creates one: ``model`` required (a model that
  supports ``createCachedContent``), ``ttl`` ("600s") or ``expireTime``, not
  both, one hour by default; refused below Google's minimum size with Google's
  words ("Cached content is too small. total_token_count=..., min_total_token_count=...").
- ``GET``/``PATCH``/``DELETE /{v}/cachedContents/{id}``, ``GET /{v}/cachedContents``
  (``pageSize`` up to 1000, an opaque ``pageToken``). PATCH takes ``ttl`` or
  ``expireTime`` with or without ``updateMask``, as the SDKs send it without.
- Another key's cache answers 403 PERMISSION_DENIED; an unknown one, or one past
  its expiry (it vanishes then, as on Google), 404 NOT_FOUND.
- ``generateContent`` with ``cachedContent``: the cache's tokens count in
  ``usageMetadata`` as ``cachedContentTokenCount`` (and inside ``promptTokenCount``);
  ``countTokens`` with one in its ``generateContentRequest`` counts them in
  ``totalTokens`` and as ``cachedContentTokenCount``.
  The request may not set ``systemInstruction``, ``tools`` or ``toolConfig`` then,
  and its model must be the cache's, as Google insists.

The token count is deterministic: that of the stand-in's prompts (a text costs
ceil(characters / 4), an inline or file part 258) over ``systemInstruction``
and ``contents``, plus ceil(characters / 4) of the compact JSON of ``tools``.
Minimum: 4096 tokens for a model whose id contains "pro", 1024 for the others.
File references inside a cache are checked by the ``check_references`` the
server gives (the Files API's own check: another key's file is 403).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from executors.standin.catalog import _find_model
from executors.standin.errors import GoogleError
from executors.standin.prompts import Prompt, get_field

DEFAULT_TTL = timedelta(hours=1)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_DURATION = re.compile(r"(\d{1,12})(?:\.(\d{1,9}))?s")
_ID_ALPHABET = string.ascii_lowercase + string.digits


def minimum_tokens(model_id: str) -> int:
    return 4096 if "pro" in model_id else 1024


def cache_token_count(payload: dict) -> int:
    prompt = Prompt.read(get_field(payload, "contents"), get_field(payload, "systemInstruction"))
    tools = get_field(payload, "tools")
    tool_tokens = math.ceil(len(json.dumps(tools, separators=(",", ":"))) / 4) if tools else 0
    return prompt.token_count() + tool_tokens


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_duration(raw: Any, field_name: str) -> timedelta:
    if not isinstance(raw, str) or not (match := _DURATION.fullmatch(raw)):
        raise GoogleError(
            400, f"Invalid value at '{field_name}' (type.googleapis.com/google.protobuf.Duration), {json.dumps(raw)}"
        )
    seconds = int(match.group(1)) + int((match.group(2) or "0").ljust(9, "0")) / 1e9
    if seconds > 315_576_000_000:  # protobuf's largest Duration
        raise GoogleError(400, f"Invalid value at '{field_name}', duration out of range.")
    return timedelta(seconds=seconds)


def parse_timestamp(raw: Any, field_name: str) -> datetime:
    try:
        if not isinstance(raw, str) or not re.fullmatch(r"\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)", raw):
            raise ValueError(raw)
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise GoogleError(
            400, f"Invalid value at '{field_name}' (type.googleapis.com/google.protobuf.Timestamp), {json.dumps(raw)}"
        ) from None
    return moment.astimezone(UTC)


def _expiry(payload: dict, now: datetime, *, required: bool) -> datetime | None:
    ttl, expire_time = get_field(payload, "ttl"), get_field(payload, "expireTime")
    if ttl is not None and expire_time is not None:
        raise GoogleError(400, "Only one of ttl or expire_time can be set.")
    if ttl is not None:
        expiry = now + parse_duration(ttl, "cached_content.ttl")
    elif expire_time is not None:
        expiry = parse_timestamp(expire_time, "cached_content.expire_time")
    elif required:
        return None
    else:
        return now + DEFAULT_TTL
    if expiry <= now:
        raise GoogleError(400, "expire_time must be in the future.")
    return expiry


@dataclass
class StoredCache:
    name: str
    owner: str  # the API key that made it
    model: str  # "models/gemini-2.5-flash"
    display_name: str
    create_time: datetime
    update_time: datetime
    expire_time: datetime
    token_count: int

    def resource(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "name": self.name,
            "model": self.model,
            "createTime": _timestamp(self.create_time),
            "updateTime": _timestamp(self.update_time),
            "expireTime": _timestamp(self.expire_time),
            "usageMetadata": {"totalTokenCount": self.token_count},
        }
        if self.display_name:
            shown["displayName"] = self.display_name
        return shown


def _key_of(request: web.Request) -> str:
    return request.headers.get("x-goog-api-key") or request.query.get("key") or ""


def _ok(payload: Any) -> web.Response:
    return web.Response(body=json.dumps(payload, indent=2).encode(), content_type="application/json", charset="UTF-8")


class CachedContents:
    """Every account's caches; ``routes`` adds the REST surface to the stand-in's app."""

    def __init__(self, check_references: Callable[[Any, str | None], object] | None = None) -> None:
        """``check_references(body, api_key)`` refuses, as Google does, files the key may not use (the Files API's)."""
        self._caches: dict[str, StoredCache] = {}
        self._check_references = check_references

    def routes(self, app: web.Application, version: str) -> None:
        app.router.add_post(f"/{version}/cachedContents", self._create)
        app.router.add_get(f"/{version}/cachedContents", self._list)
        app.router.add_get(f"/{version}/cachedContents/{{id}}", self._get)
        app.router.add_patch(f"/{version}/cachedContents/{{id}}", self._patch)
        app.router.add_delete(f"/{version}/cachedContents/{{id}}", self._delete)

    def __len__(self) -> int:
        return len(self._caches)

    def stored(self) -> list[StoredCache]:
        """Every account's caches, expired ones included until a call sweeps them (tests look here)."""
        return list(self._caches.values())

    def lose(self, name: str) -> None:
        """Forget a cache as Google may (tests: the account lost it)."""
        self._caches.pop(name, None)

    def find(self, name: Any, key: str) -> StoredCache:
        """The live cache ``name`` of ``key``; Google's 403 for another account's, 404 for an unknown one."""
        if not isinstance(name, str) or not name.startswith("cachedContents/"):
            raise GoogleError(400, f"Invalid CachedContent name: {json.dumps(name)}.")
        self._sweep()
        cache = self._caches.get(name)
        if cache is None:
            raise GoogleError(404, f"CachedContent not found: {name}.")
        if cache.owner != key:
            raise GoogleError(403, f"Permission denied on CachedContent {name} (or it may not exist).")
        return cache

    def _sweep(self) -> None:
        now = datetime.now(UTC)
        for name in [name for name, cache in self._caches.items() if cache.expire_time <= now]:
            del self._caches[name]

    def _named(self, request: web.Request) -> StoredCache:
        return self.find(f"cachedContents/{request.match_info['id']}", _key_of(request))

    async def _payload(self, request: web.Request) -> dict:
        try:
            payload = json.loads(await request.read() or b"null")
        except ValueError:
            raise GoogleError(400, "Invalid JSON payload received. Unexpected token.") from None
        if not isinstance(payload, dict):
            raise GoogleError(400, "Invalid JSON payload received. Expected an object.")
        return payload

    async def _create(self, request: web.Request) -> web.Response:
        payload = await self._payload(request)
        model = get_field(payload, "model")
        if not isinstance(model, str) or not model:
            raise GoogleError(400, "CachedContent.model is required.")
        model_id = model.removeprefix("models/")
        found = _find_model(model_id, request, "createCachedContent")
        if "createCachedContent" not in found["supportedGenerationMethods"]:
            version = request.path.split("/")[1]
            raise GoogleError(
                404,
                f"models/{model_id} is not found for API version {version}, or is not supported for "
                "createCachedContent. Call ListModels to see the list of available models and their supported methods.",
            )
        if self._check_references is not None:
            self._check_references(payload, _key_of(request) or None)
        now = datetime.now(UTC)
        expiry = _expiry(payload, now, required=False)
        assert expiry is not None
        tokens = cache_token_count(payload)
        minimum = minimum_tokens(model_id)
        if tokens < minimum:
            raise GoogleError(
                400, f"Cached content is too small. total_token_count={tokens}, min_total_token_count={minimum}"
            )
        display_name = get_field(payload, "displayName") or ""
        if not isinstance(display_name, str):
            raise GoogleError(400, "Invalid value at 'cached_content.display_name' (TYPE_STRING).")
        name = "cachedContents/" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))
        cache = StoredCache(name, _key_of(request), f"models/{model_id}", display_name, now, now, expiry, tokens)
        self._caches[name] = cache
        return _ok(cache.resource())

    async def _list(self, request: web.Request) -> web.Response:
        raw_size = request.query.get("pageSize", "")
        if raw_size and not raw_size.isdigit():
            raise GoogleError(400, f"Invalid value at 'page_size' (TYPE_INT32), \"{raw_size}\"")
        size = min(int(raw_size or 0) or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        token = request.query.get("pageToken") or "0"
        if not token.isdigit():
            raise GoogleError(400, "Invalid page token.")
        start = int(token)
        self._sweep()
        key = _key_of(request)
        mine = sorted((c for c in self._caches.values() if c.owner == key), key=lambda c: c.create_time)
        page: dict[str, Any] = {}
        if mine[start : start + size]:
            page["cachedContents"] = [cache.resource() for cache in mine[start : start + size]]
        if start + size < len(mine):
            page["nextPageToken"] = str(start + size)
        return _ok(page)

    async def _get(self, request: web.Request) -> web.Response:
        return _ok(self._named(request).resource())

    async def _patch(self, request: web.Request) -> web.Response:
        cache = self._named(request)
        payload = await self._payload(request)
        mask = request.query.get("updateMask")
        if mask is not None:
            fields = {field.strip() for field in mask.split(",") if field.strip()}
            unknown = fields - {"ttl", "expireTime", "expire_time"}
            if unknown:
                raise GoogleError(400, f"Only ttl or expire_time can be updated, not {', '.join(sorted(unknown))}.")
        now = datetime.now(UTC)
        expiry = _expiry(payload, now, required=True)
        if expiry is None:
            raise GoogleError(400, "Either ttl or expire_time must be set to update a CachedContent.")
        cache.expire_time, cache.update_time = expiry, now
        return _ok(cache.resource())

    async def _delete(self, request: web.Request) -> web.Response:
        cache = self._named(request)
        del self._caches[cache.name]
        return _ok({})

    # generateContent, streamGenerateContent and countTokens naming a cache.

    def cached_tokens(self, request: web.Request, model_id: str, payload: dict) -> int:
        """The tokens the request's ``cachedContent`` brings (0 without one); Google's errors for a bad one."""
        name = get_field(payload, "cachedContent")
        if name is None:
            return 0
        cache = self.find(name, _key_of(request))
        if any(get_field(payload, field) is not None for field in ("systemInstruction", "tools", "toolConfig")):
            raise GoogleError(
                400,
                "CachedContent can not be used with GenerateContent request setting system_instruction, tools or "
                "tool_config.\n\nProposed fix: move those values to CachedContent from GenerateContent request.",
            )
        if cache.model != f"models/{model_id}":
            raise GoogleError(
                400,
                f"Model used by GenerateContent request (models/{model_id}) and CachedContent ({cache.model}) "
                "has to be the same.",
            )
        return cache.token_count


def with_cached_usage(response: dict[str, Any], cached: int) -> dict[str, Any]:
    """An answer's usageMetadata with the cache's tokens in it, as Google counts them."""
    if cached:
        usage = response["usageMetadata"]
        usage["promptTokenCount"] += cached
        usage["totalTokenCount"] += cached
        usage["cachedContentTokenCount"] = cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    return response


def with_cached_count(counted: dict[str, Any], cached: int) -> dict[str, Any]:
    """A countTokens answer with the cache's tokens in it: counted in ``totalTokens`` and named apart."""
    if cached:
        counted["totalTokens"] += cached
        counted["cachedContentTokenCount"] = cached
        counted["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    return counted
