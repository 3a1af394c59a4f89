"""The one map "proxy resource -> accounts holding it", for files, cached contents and batches alike.

A placement past its expiry (or about to reach it within its kind's margin)
counts as absent: a file Google forgot in 48 h must be uploaded again, not
referred to.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from django.db.models import Q
from django.utils import timezone

from resources.models import Kind, Placement

# A copy that expires within this is treated as gone: the call using it may last this long.
MARGIN = timedelta(minutes=10)
# A cache's copies expire with the cache itself (resources.caches asks each for the
# cache's own expireTime), so a larger margin would only refuse every copy of a
# short-lived cache and make a new one on each call.
MARGINS = {Kind.CACHED_CONTENT: timedelta(seconds=5)}


def _live(kind: Kind, now: datetime | None = None) -> Q:
    now = now or timezone.now()
    return Q(expires_at__isnull=True) | Q(expires_at__gt=now + MARGINS.get(kind, MARGIN))


def holding(kind: Kind, resource_ids: Iterable[str]) -> dict[int, dict[str, Placement]]:
    """Account id -> {resource id -> its live placement there}, for the accounts holding any of them."""
    found: dict[int, dict[str, Placement]] = {}
    for placement in Placement.objects.filter(_live(kind), kind=kind, resource_id__in=list(resource_ids)):
        found.setdefault(placement.account_id, {})[placement.resource_id] = placement
    return found


def holding_all(kind: Kind, resource_ids: Iterable[str]) -> frozenset[int]:
    """The accounts that hold a live copy of every one of ``resource_ids``."""
    wanted = set(resource_ids)
    return frozenset(account for account, held in holding(kind, wanted).items() if set(held) >= wanted)


def on_account(kind: Kind, resource_id: str, account_id: int) -> Placement | None:
    return Placement.objects.filter(_live(kind), kind=kind, resource_id=resource_id, account_id=account_id).first()


def remember(
    kind: Kind,
    resource_id: str,
    account_id: int,
    upstream_name: str,
    upstream_uri: str = "",
    expires_at: datetime | None = None,
) -> Placement:
    placement, _ = Placement.objects.update_or_create(
        kind=kind,
        resource_id=resource_id,
        account_id=account_id,
        defaults={"upstream_name": upstream_name, "upstream_uri": upstream_uri, "expires_at": expires_at},
    )
    return placement


def forget(kind: Kind, resource_id: str, account_id: int | None = None) -> None:
    """Drop the placement on one account (it lost the copy), or on all of them (the resource is gone)."""
    placements = Placement.objects.filter(kind=kind, resource_id=resource_id)
    if account_id is not None:
        placements = placements.filter(account_id=account_id)
    placements.delete()


aholding = sync_to_async(holding)
aholding_all = sync_to_async(holding_all)
aon_account = sync_to_async(on_account)
aremember = sync_to_async(remember)
aforget = sync_to_async(forget)
