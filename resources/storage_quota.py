"""A key's room in the Files API: bytes and number of live files, its own limits over its member's defaults.

Counted from the files table (live: not failed, not expired), uploads in
progress included at their declared size, so two uploads started together
cannot both take the last of the room.
"""

from __future__ import annotations

from django.db.models import Count, Q, Sum
from django.utils import timezone

from accounts.models import ProxyKey
from accounts.rejections import QUOTA_FAILURE
from gateway.errors import ApiError
from resources.models import StoredFile


def _live_of(key: ProxyKey):
    return StoredFile.objects.filter(key=key, expires_at__gt=timezone.now()).filter(~Q(state=StoredFile.State.FAILED))


def _used(key: ProxyKey) -> tuple[int, int]:
    totals = _live_of(key).aggregate(files=Count("id"), stored=Sum("size_bytes"))
    return totals["files"] or 0, totals["stored"] or 0


def _refusal(key: ProxyKey, limit_id: str, description: str, size: int, detail: str) -> ApiError:
    return ApiError(
        429,
        "RESOURCE_EXHAUSTED",
        f"Quota exceeded for key {key.prefix}: {description}, limit {size}{detail}. "
        "Delete files (files.delete) or wait for them to expire.",
        details=[
            {
                "@type": QUOTA_FAILURE,
                "violations": [
                    {"quotaMetric": f"gemproxy/{limit_id}", "quotaId": limit_id, "quotaValue": str(size)},
                ],
            }
        ],
        outcome="rejected_quota",
    )


def check_new_file(key: ProxyKey, declared_size: int | None) -> None:
    """Refuse a new file when the key has no room for one more, or for ``declared_size`` more bytes."""
    storage = key.policy.storage
    if not storage.file_count and not storage.storage_bytes:
        return
    files, stored = _used(key)
    if storage.file_count and files + 1 > storage.file_count:
        raise _refusal(key, "file_count", "stored files", storage.file_count, f" ({files} stored)")
    if storage.storage_bytes and declared_size is not None and stored + declared_size > storage.storage_bytes:
        raise _refusal(
            key,
            "storage_bytes",
            "bytes of stored files",
            storage.storage_bytes,
            f" ({stored} stored, this file declares {declared_size})",
        )


def bytes_left(key: ProxyKey, excluding: StoredFile | None = None) -> int | None:
    """How many more bytes the key may store (``excluding`` one file's own count), or None for no limit."""
    limit = key.policy.storage.storage_bytes
    if not limit:
        return None
    live = _live_of(key)
    if excluding is not None:
        live = live.exclude(pk=excluding.pk)
    stored = live.aggregate(stored=Sum("size_bytes"))["stored"] or 0
    return max(0, limit - stored)


def over_storage(key: ProxyKey) -> ApiError:
    """The refusal of bytes that were not declared and went past the key's room."""
    limit = key.policy.storage.storage_bytes
    return _refusal(key, "storage_bytes", "bytes of stored files", limit, "")
