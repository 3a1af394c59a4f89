"""The expiry sweep of the Files API: expired files, abandoned uploads, and the copies of gone files upstream.

One pass (``sweep``):

1. Every expired file row is deleted (an abandoned upload is an UPLOADING
   row whose expiry is its session's), then its bytes and upload parts.
2. Every file placement whose file is gone (expired, or deleted by its
   member) is dropped, and the copy deleted on its account through that
   account's executor. An account with no executor only loses its
   placement: Google drops the copy itself at its expiry.
3. Every expired cached content is deleted with its placements (its copies
   end upstream at the same moment, ``resources.caches.delete_expired``).
4. Every expired batch is deleted with its placements (Google forgets it
   after the same lifetime, ``resources.batches.delete_expired``); the
   responses files it wrote are files with their own expiry (step 1).

Several processes may sweep at once: each row is claimed by the DELETE that
removes it, and only the process whose DELETE removed it does the rest.
It runs in each gateway process every ``GEMPROXY_FILES_SWEEP_INTERVAL``
seconds (started by the first Files API call the process serves) and as
``manage.py sweep_files``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from executors.dispatcher import DispatchError
from resources import batches, caches, storage, upstream
from resources.models import Kind, Placement, StoredFile, UploadPart

log = logging.getLogger(__name__)

BATCH = 200


@dataclass
class SweepReport:
    files: int = 0
    copies_deleted: int = 0
    copies_forgotten: int = 0
    caches: int = 0
    batches: int = 0

    def __str__(self) -> str:
        return (
            f"{self.files} expired file(s) removed, {self.copies_deleted} upstream copy(ies) deleted, "
            f"{self.copies_forgotten} placement(s) dropped without an upstream delete, "
            f"{self.caches} expired cached content(s) removed, "
            f"{self.batches} expired batch(es) removed"
        )


def _claim_expired_files(now: datetime) -> list[list[str]]:
    """Delete a batch of expired rows; for each one this process deleted, the storage names of its bytes and parts."""
    claimed: list[list[str]] = []
    for stored in StoredFile.objects.filter(expires_at__lte=now).order_by("expires_at")[:BATCH]:
        parts = list(UploadPart.objects.filter(session__file=stored).values_list("storage_name", flat=True))
        if StoredFile.objects.filter(pk=stored.pk, expires_at__lte=now).delete()[0]:
            claimed.append([name for name in [stored.storage_name, *parts] if name])
    return claimed


def _claim_orphan_placements() -> list[Placement]:
    orphans = Placement.objects.filter(kind=Kind.FILE).exclude(resource_id__in=StoredFile.objects.values("id"))
    claimed = []
    for placement in orphans[:BATCH]:
        if Placement.objects.filter(pk=placement.pk).delete()[0]:
            claimed.append(placement)
    return claimed


async def _delete_copy(placement: Placement) -> bool:
    """Delete the copy on its account; False when it could not be reached (it expires there by itself)."""
    try:
        answer = await upstream.call(
            "DELETE", f"/v1beta/{placement.upstream_name}", accounts=frozenset({placement.account_id})
        )
    except DispatchError as error:
        log.info("file copy %s on account %s left to expire: %s", placement.upstream_name, placement.account_id, error)
        return False
    return answer.ok or answer.status in (403, 404)


async def sweep(now: datetime | None = None) -> SweepReport:
    report = SweepReport()
    now = now or timezone.now()
    while True:
        claimed = await database_sync_to_async(_claim_expired_files)(now)
        if not claimed:
            break
        report.files += len(claimed)
        await asyncio.to_thread(_delete_names, [name for names in claimed for name in names])
    while True:
        placements = await database_sync_to_async(_claim_orphan_placements)()
        if not placements:
            break
        for placement in placements:
            if await _delete_copy(placement):
                report.copies_deleted += 1
            else:
                report.copies_forgotten += 1
    report.caches = await database_sync_to_async(caches.delete_expired)()
    report.batches = await database_sync_to_async(batches.delete_expired)()
    return report


def _delete_names(names: list[str]) -> None:
    for name in names:
        storage.delete(name)


_running: dict[int, asyncio.Task] = {}


def ensure_running() -> None:
    """Start this process's periodic sweep on the running loop, once (no-op when the interval is 0)."""
    interval = settings.GEMPROXY_FILES_SWEEP_INTERVAL
    if interval <= 0:
        return
    loop = asyncio.get_running_loop()
    task = _running.get(id(loop))
    if task is None or task.done():
        _running[id(loop)] = loop.create_task(_every(interval), name="gemproxy files sweep")


async def _every(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            report = await sweep()
            if report.files or report.copies_deleted or report.copies_forgotten or report.caches or report.batches:
                log.info("files sweep: %s", report)
        except Exception:
            # A database or storage outage must not end the sweeping for good.
            log.exception("files sweep failed; trying again in %ss", interval)
