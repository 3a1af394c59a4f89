"""Caches past their expiry leave the database with their placements (their upstream copies end by themselves)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from executors.models import ExecutorAccount
from resources.caches import delete_expired
from resources.models import CachedContent, Kind, Placement

pytestmark = pytest.mark.django_db(transaction=True)


def _cache(member, expires_in: timedelta) -> CachedContent:
    expiry = datetime.now(UTC) + expires_in
    cache = CachedContent.objects.create(
        owner=member, model="models/gemini-2.5-flash", create_request={}, expires_at=expiry
    )
    account, _ = ExecutorAccount.objects.get_or_create(label="ana@example.com")
    Placement.objects.create(
        kind=Kind.CACHED_CONTENT,
        resource_id=cache.id,
        account=account,
        upstream_name=f"cachedContents/{cache.id}",
        expires_at=expiry,
    )
    return cache


def test_the_sweep_deletes_expired_caches_and_their_placements(member) -> None:
    _cache(member, timedelta(seconds=-1))
    live = _cache(member, timedelta(hours=1))

    assert delete_expired() == 1
    assert list(CachedContent.objects.values_list("id", flat=True)) == [live.id]
    assert list(Placement.objects.values_list("resource_id", flat=True)) == [live.id]


def test_the_files_sweep_command_removes_expired_caches_too(member) -> None:
    # One sweep for the stateful API: the in-process one and `manage.py sweep_files` both run it.
    _cache(member, timedelta(seconds=-1))
    out = StringIO()

    call_command("sweep_files", stdout=out)

    assert not CachedContent.objects.exists()
    assert "1 expired cached content(s) removed" in out.getvalue()
