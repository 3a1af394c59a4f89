"""Batches past their expiry leave with their placements; the responses files they wrote expire as files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command

from executors.models import ExecutorAccount
from resources.batches import GENERATED
from resources.models import Batch, Kind, Placement, StoredFile
from resources.sweep import sweep

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def account() -> ExecutorAccount:
    return ExecutorAccount.objects.create(label="ana@example.com")


def _batch(member, account: ExecutorAccount, expires_in: timedelta) -> Batch:
    batch = Batch.objects.create(
        owner=member, model="models/gemini-2.5-flash", expires_at=datetime.now(UTC) + expires_in
    )
    Placement.objects.create(
        kind=Kind.BATCH, resource_id=batch.id, account=account, upstream_name=f"batches/up{batch.id}"
    )
    return batch


def _responses_file(member, account: ExecutorAccount, expires_in: timedelta) -> StoredFile:
    # What resources.batches records for a responses file: bytes upstream only, a copy on the batch's account.
    stored = StoredFile.objects.create(
        owner=member,
        mime_type="application/jsonl",
        state=StoredFile.State.ACTIVE,
        source=GENERATED,
        expires_at=datetime.now(UTC) + expires_in,
    )
    Placement.objects.create(kind=Kind.FILE, resource_id=stored.id, account=account, upstream_name="files/batch-out")
    return stored


def test_the_sweep_deletes_expired_batches_and_their_placements(member, account) -> None:
    _batch(member, account, timedelta(seconds=-1))
    live = _batch(member, account, timedelta(hours=1))

    report = async_to_sync(sweep)()

    assert report.batches == 1
    assert list(Batch.objects.values_list("id", flat=True)) == [live.id]
    assert list(Placement.objects.filter(kind=Kind.BATCH).values_list("resource_id", flat=True)) == [live.id]


def test_an_expired_batchs_responses_file_goes_with_the_files_expiry(member, account) -> None:
    _batch(member, account, timedelta(seconds=-1))
    _responses_file(member, account, timedelta(seconds=-1))

    report = async_to_sync(sweep)()

    assert (report.batches, report.files) == (1, 1)
    assert not StoredFile.objects.exists()
    # The account's executor is not connected: its copy is forgotten and ends upstream by itself.
    assert report.copies_forgotten == 1
    assert not Placement.objects.exists()


def test_the_files_sweep_command_removes_expired_batches_too(member, account) -> None:
    _batch(member, account, timedelta(seconds=-1))
    out = StringIO()

    call_command("sweep_files", stdout=out)

    assert not Batch.objects.exists()
    assert "1 expired batch(es) removed" in out.getvalue()
