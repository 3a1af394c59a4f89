"""Binding a call to its files: the accounts holding them are preferred, the body is rewritten per account,
and a copy the upstream lost is forgotten so that it is made again."""

from __future__ import annotations

import datetime
import json

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from executors.models import ExecutorAccount
from gateway.errors import ApiError
from resources import placements
from resources.binding import bind
from resources.models import Kind, StoredFile

pytestmark = pytest.mark.django_db(transaction=True)
ORIGINS = {"https://gw.example"}


@sync_to_async
def setting(member, files: int = 2) -> tuple[list[StoredFile], ExecutorAccount, ExecutorAccount]:
    stored = [
        StoredFile.objects.create(
            owner=member,
            mime_type="application/pdf",
            storage_name=f"stored/{n}",
            state="ACTIVE",
            expires_at=timezone.now() + datetime.timedelta(hours=48),
        )
        for n in range(files)
    ]
    return stored, ExecutorAccount.objects.create(label="a"), ExecutorAccount.objects.create(label="b")


def place(stored: StoredFile, account: ExecutorAccount, upstream_id: str, hours: float = 40) -> None:
    placements.remember(
        Kind.FILE,
        stored.id,
        account.pk,
        f"files/{upstream_id}",
        f"https://up.example/v1beta/files/{upstream_id}",
        timezone.now() + datetime.timedelta(hours=hours),
    )


def body_naming(*stored: StoredFile) -> bytes:
    parts = [{"fileData": {"fileUri": f"files/{s.id}"}} for s in stored] + [{"text": "compare"}]
    return json.dumps({"contents": [{"role": "user", "parts": parts}]}).encode()


def uris_in(body: bytes) -> list[str]:
    return [p["fileData"]["fileUri"] for p in json.loads(body)["contents"][0]["parts"] if "fileData" in p]


async def test_a_body_without_proxy_files_is_not_bound(member) -> None:
    assert await bind(b'{"contents": [{"parts": [{"text": "hi"}]}]}', member.pk, ORIGINS) is None
    youtube = b'{"contents": [{"parts": [{"fileData": {"fileUri": "https://youtu.be/x"}}]}]}'
    assert await bind(youtube, member.pk, ORIGINS) is None


async def test_the_accounts_holding_every_file_are_preferred(member) -> None:
    (first, second), a, b = await setting(member)
    await sync_to_async(place)(first, a, "a1")
    await sync_to_async(place)(second, a, "a2")
    await sync_to_async(place)(first, b, "b1")  # b lacks the second

    binding = await bind(body_naming(first, second), member.pk, ORIGINS)

    assert binding is not None and binding.prefer == frozenset({a.pk})


async def test_a_copy_about_to_expire_is_not_a_reason_to_prefer(member) -> None:
    (only,), a, _ = await setting(member, files=1)
    await sync_to_async(place)(only, a, "a1", hours=0.05)

    binding = await bind(body_naming(only), member.pk, ORIGINS)

    assert binding is not None and binding.prefer == frozenset()


async def test_the_body_names_the_serving_accounts_copies(member) -> None:
    (first, second), a, b = await setting(member)
    for stored, n in ((first, 1), (second, 2)):
        await sync_to_async(place)(stored, a, f"a{n}")
        await sync_to_async(place)(stored, b, f"b{n}")
    binding = await bind(body_naming(first, second), member.pk, ORIGINS)
    assert binding is not None

    for_a = await binding.body_for(a.pk)
    for_b = await binding.body_for(b.pk)

    assert uris_in(for_a) == ["https://up.example/v1beta/files/a1", "https://up.example/v1beta/files/a2"]
    assert uris_in(for_b) == ["https://up.example/v1beta/files/b1", "https://up.example/v1beta/files/b2"]
    assert json.loads(for_b)["contents"][0]["parts"][-1] == {"text": "compare"}


async def test_an_upstream_403_naming_a_copy_forgets_it(member) -> None:
    (first, second), a, _ = await setting(member)
    await sync_to_async(place)(first, a, "a1")
    await sync_to_async(place)(second, a, "a2")
    binding = await bind(body_naming(first, second), member.pk, ORIGINS)
    assert binding is not None
    await binding.body_for(a.pk)
    refusal = (
        b'{"error": {"code": 403, "message": "You do not have permission to access the File a2 or it may not exist."}}'
    )

    assert await binding.lost(a.pk, 403, refusal)
    assert await placements.aon_account(Kind.FILE, second.id, a.pk) is None
    assert await placements.aon_account(Kind.FILE, first.id, a.pk) is not None


async def test_an_error_about_something_else_forgets_nothing(member) -> None:
    (only,), a, _ = await setting(member, files=1)
    await sync_to_async(place)(only, a, "a1")
    binding = await bind(body_naming(only), member.pk, ORIGINS)
    assert binding is not None
    await binding.body_for(a.pk)

    assert not await binding.lost(a.pk, 403, b'{"error": {"message": "Permission denied on model."}}')
    assert not await binding.lost(a.pk, 429, b'{"error": {"message": "a1"}}')
    assert await placements.aon_account(Kind.FILE, only.id, a.pk) is not None


async def test_a_reference_to_another_members_file_refuses_the_call(member, other_member) -> None:
    (theirs,), _, _ = await setting(other_member, files=1)

    with pytest.raises(ApiError) as raised:
        await bind(body_naming(theirs), member.pk, ORIGINS)

    assert (raised.value.http_status, raised.value.status) == (403, "PERMISSION_DENIED")
