"""What members send about cached contents, read as Google reads it, and the CachedContent gemproxy answers.

A create request is validated and kept as it will be sent again on every
account (``read_create_request``): its expiry (``ttl`` or ``expireTime``) is
gemproxy's, computed once; everything else passes as the member wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.errors import invalid_argument
from gateway.resources import MODEL_ID, quoted
from resources.google_api import timestamp
from resources.models import CachedContent

DEFAULT_TTL = timedelta(hours=1)
MAX_DISPLAY_NAME = 128
# Set by the expiry, never copied from the member's body to an upstream.
_EXPIRY_FIELDS = ("ttl", "expireTime", "expire_time")
_NOT_STORED = (*_EXPIRY_FIELDS, "name", "model", "displayName", "display_name", "usageMetadata", "usage_metadata")
_DURATION = re.compile(r"(\d{1,12})(?:\.(\d{1,9}))?s")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)")
_NAME = re.compile(r"cachedContents/([a-z0-9]{1,40})")


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


def moment(raw: Any) -> datetime:
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
            expiry = moment(expire_time)
        elif default is not None:
            expiry = now + default
        else:
            raise invalid_argument("Either ttl or expire_time must be set to update a CachedContent.")
    except OverflowError:
        raise invalid_argument("The expiry of the cached content is out of range.") from None
    if expiry <= now:
        raise invalid_argument("expire_time must be in the future.")
    return expiry


def strings(value: Any) -> Iterator[str]:
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
    if any("\x00" in text for text in strings(body)):
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
