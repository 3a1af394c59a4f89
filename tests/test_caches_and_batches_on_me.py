"""Members see their own cached contents and batches on /me/ (name, model, batch state, expiry), never another's."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from resources.models import Batch, CachedContent

pytestmark = pytest.mark.django_db


def _cache(owner, display_name: str, expires_in: timedelta, key=None) -> CachedContent:
    return CachedContent.objects.create(
        owner=owner,
        key=key,
        display_name=display_name,
        model="models/gemini-2.5-flash",
        create_request={"model": "models/gemini-2.5-flash"},
        expires_at=timezone.now() + expires_in,
    )


def _batch(owner, display_name: str, expires_in: timedelta, key=None) -> Batch:
    return Batch.objects.create(
        owner=owner,
        key=key,
        display_name=display_name,
        model="models/gemini-2.5-pro",
        state="BATCH_STATE_RUNNING",
        expires_at=timezone.now() + expires_in,
    )


def test_members_see_their_cached_contents_on_their_page(client, member, make_key) -> None:
    key, _ = make_key()
    cache = _cache(member, "contract-corpus", timedelta(hours=2), key=key)
    client.force_login(member)

    page = client.get("/me/").content.decode()

    assert cache.name in page
    assert "contract-corpus" in page
    assert "models/gemini-2.5-flash" in page
    assert cache.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") in page
    assert key.prefix in page


def test_members_see_their_batches_with_their_state_on_their_page(client, member) -> None:
    batch = _batch(member, "nightly-eval", timedelta(hours=48))
    client.force_login(member)

    page = client.get("/me/").content.decode()

    assert batch.name in page
    assert "nightly-eval" in page
    assert "models/gemini-2.5-pro" in page
    assert "BATCH_STATE_RUNNING" in page


def test_members_never_see_another_members_caches_or_batches(client, member, other_member) -> None:
    mine_cache, mine_batch = (
        _cache(member, "mine-cache", timedelta(hours=1)),
        _batch(member, "mine-batch", timedelta(hours=1)),
    )
    theirs_cache = _cache(other_member, "their-cache", timedelta(hours=1))
    theirs_batch = _batch(other_member, "their-batch", timedelta(hours=1))
    client.force_login(member)

    page = client.get("/me/").content.decode()

    assert mine_cache.name in page and mine_batch.name in page
    assert theirs_cache.name not in page and "their-cache" not in page
    assert theirs_batch.name not in page and "their-batch" not in page


def test_expired_caches_and_batches_are_not_shown_before_the_sweep(client, member) -> None:
    cache = _cache(member, "stale-cache", -timedelta(minutes=1))
    batch = _batch(member, "stale-batch", -timedelta(minutes=1))
    client.force_login(member)

    page = client.get("/me/").content.decode()

    assert cache.name not in page and batch.name not in page
    assert "No cached contents." in page and "No batches." in page
