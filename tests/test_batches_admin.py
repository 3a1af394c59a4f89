"""Batches in the admin: whose, which model, what state, and the account that runs each."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from executors.models import ExecutorAccount
from resources.models import Batch, Kind, Placement

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def pinned_batch(member) -> Batch:
    account = ExecutorAccount.objects.create(label="ana@example.com")
    batch = Batch.objects.create(
        owner=member,
        model="models/gemini-2.5-flash",
        display_name="nightly run",
        state="BATCH_STATE_RUNNING",
        expires_at=timezone.now() + timedelta(hours=48),
    )
    Placement.objects.create(kind=Kind.BATCH, resource_id=batch.id, account=account, upstream_name="batches/up123")
    return batch


def test_the_list_shows_owner_model_state_and_pinned_account(admin_client, pinned_batch):
    page = admin_client.get("/admin/resources/batch/").content.decode()

    for shown in ("ada", "models/gemini-2.5-flash", "BATCH_STATE_RUNNING", "ana@example.com", "nightly run"):
        assert shown in page


def test_the_detail_page_names_the_upstream_batch_and_offers_no_add(admin_client, pinned_batch):
    detail = admin_client.get(f"/admin/resources/batch/{pinned_batch.id}/change/").content.decode()
    add = admin_client.get("/admin/resources/batch/add/")

    assert "batches/up123" in detail
    assert add.status_code == 403


def test_a_batch_whose_account_was_removed_says_so(admin_client, pinned_batch):
    ExecutorAccount.objects.all().delete()

    assert "none (account removed)" in admin_client.get("/admin/resources/batch/").content.decode()
