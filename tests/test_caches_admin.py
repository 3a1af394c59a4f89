"""The admin lists the members' cached contents with owner, model, expiry and the accounts holding a copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from executors.models import ExecutorAccount
from resources.models import CachedContent, Kind, Placement

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def cache_on_an_account(member) -> CachedContent:
    expiry = datetime.now(UTC) + timedelta(hours=1)
    cache = CachedContent.objects.create(
        owner=member, model="models/gemini-2.5-flash", display_name="handbook", create_request={}, expires_at=expiry
    )
    account = ExecutorAccount.objects.create(label="ana@example.com")
    Placement.objects.create(
        kind=Kind.CACHED_CONTENT,
        resource_id=cache.id,
        account=account,
        upstream_name="cachedContents/up1",
        expires_at=expiry,
    )
    return cache


def test_the_list_shows_owner_model_and_the_accounts_holding_a_copy(admin_client, cache_on_an_account) -> None:
    page = admin_client.get("/admin/resources/cachedcontent/").content.decode()

    assert f"cachedContents/{cache_on_an_account.id}" in page
    assert "ada" in page and "models/gemini-2.5-flash" in page
    assert "ana@example.com as cachedContents/up1" in page


def test_a_cache_cannot_be_added_or_edited_in_the_admin(admin_client, cache_on_an_account) -> None:
    assert admin_client.get("/admin/resources/cachedcontent/add/").status_code == 403
    page = admin_client.get(f"/admin/resources/cachedcontent/{cache_on_an_account.id}/change/").content.decode()
    assert 'name="expires_at"' not in page
