"""Admins see every file with its owner, key, size, state, expiry and copies; members see theirs on /me/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from executors.models import ExecutorAccount
from resources.models import Kind, Placement, StoredFile

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(member, make_key) -> StoredFile:
    key, _ = make_key()
    return StoredFile.objects.create(
        owner=member,
        key=key,
        display_name="quarterly-report.pdf",
        mime_type="application/pdf",
        size_bytes=3 * 1024 * 1024,
        state=StoredFile.State.ACTIVE,
        expires_at=timezone.now() + timedelta(hours=48),
    )


def test_the_admin_lists_files_with_their_copies_on_accounts(client, admin_user, stored) -> None:
    account = ExecutorAccount.objects.create(label="alice@example.com")
    Placement.objects.create(kind=Kind.FILE, resource_id=stored.pk, account=account, upstream_name="files/up123")
    client.force_login(admin_user)

    page = client.get("/admin/resources/storedfile/").content.decode()

    assert stored.name in page
    assert "3.0\xa0MB" in page
    assert "alice@example.com (files/up123)" in page
    assert stored.key.prefix in page


def test_deleting_a_file_in_the_admin_deletes_its_bytes(client, admin_user, stored, settings, tmp_path) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "bytes").write_bytes(b"x")
    StoredFile.objects.filter(pk=stored.pk).update(storage_name="files/bytes")
    client.force_login(admin_user)

    client.post(f"/admin/resources/storedfile/{stored.pk}/delete/", {"post": "yes"})

    assert not StoredFile.objects.exists()
    assert not (tmp_path / "files" / "bytes").exists()


def test_members_see_their_own_files_on_their_page(client, member, other_member, stored) -> None:
    StoredFile.objects.create(
        owner=other_member,
        mime_type="text/plain",
        display_name="not-yours.txt",
        state="ACTIVE",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    client.force_login(member)

    page = client.get("/me/").content.decode()

    assert "quarterly-report.pdf" in page
    assert stored.name in page
    assert "not-yours.txt" not in page
