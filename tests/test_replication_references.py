"""The proxy's files in a request body: found in either case at any depth, checked against their owner, rewritten."""

from __future__ import annotations

import datetime
import json

import pytest
from django.utils import timezone

from gateway.errors import ApiError
from resources import references
from resources.models import StoredFile

ORIGINS = {"https://gw.example"}


def body_with(*uris: str, snake: bool = False) -> dict:
    key, uri_key = ("file_data", "file_uri") if snake else ("fileData", "fileUri")
    return {"contents": [{"parts": [{key: {uri_key: uri, "mime_type": "application/pdf"}} for uri in uris]}]}


def ids(body: object) -> list[str]:
    return [reference.resource_id for reference in references.file_references(body, ORIGINS)]


def test_a_bare_name_and_the_gateways_full_uri_are_both_references() -> None:
    body = body_with("files/abc123", "https://gw.example/v1beta/files/def456", "https://gw.example/v1/files/g7")

    assert ids(body) == ["abc123", "def456", "g7"]


def test_snake_case_references_count_too() -> None:
    assert ids(body_with("files/abc123", snake=True)) == ["abc123"]


def test_uris_that_are_not_the_gateways_pass_untouched() -> None:
    body = body_with(
        "https://www.youtube.com/watch?v=x",
        "https://generativelanguage.googleapis.com/v1beta/files/abc",
        "https://gw.example.evil.com/v1beta/files/abc",
        "https://gw.example/v1beta/files/abc?x=1",
        "gs://bucket/files/abc",
    )

    assert ids(body) == []


def test_references_are_found_anywhere_in_the_body() -> None:
    body = {
        "systemInstruction": {"parts": [{"fileData": {"fileUri": "files/sys1"}}]},
        "contents": [{"parts": [{"text": "fileData"}]}],
        "generateContentRequest": {"contents": [{"parts": [{"file_data": {"file_uri": "files/inner1"}}]}]},
    }

    assert sorted(ids(body)) == ["inner1", "sys1"]


def test_a_deeply_nested_body_is_walked_without_recursion() -> None:
    body: object = {"fileData": {"fileUri": "files/deep1"}}
    for _ in range(50_000):
        body = [body]

    assert ids(body) == ["deep1"]


def test_rewriting_changes_only_the_references() -> None:
    parsed = references.parse(
        json.dumps({**body_with("files/abc123"), "generationConfig": {"temperature": 0.7}}).encode()
    )
    (reference,) = references.file_references(parsed, ORIGINS)

    reference.holder[reference.key] = "https://up.example/v1beta/files/zzz"

    assert json.loads(references.serialized(parsed)) == {
        **body_with("https://up.example/v1beta/files/zzz"),
        "generationConfig": {"temperature": 0.7},
    }


@pytest.mark.parametrize("raw", [b"{", b'{"a": NaN}', b'{"a": 1e999}', b"\xff"])
def test_a_body_that_cannot_be_written_back_is_invalid_argument(raw: bytes) -> None:
    with pytest.raises(ApiError) as raised:
        references.parse(raw)

    assert (raised.value.http_status, raised.value.status) == (400, "INVALID_ARGUMENT")


@pytest.mark.django_db(transaction=True)
async def test_the_members_own_active_files_are_usable(member) -> None:
    mine = await StoredFile.objects.acreate(
        owner=member,
        mime_type="text/plain",
        storage_name="s",
        state="ACTIVE",
        expires_at=timezone.now() + datetime.timedelta(hours=1),
    )

    found = await references.owned_files([mine.id], member.pk)

    assert list(found) == [mine.id]


@pytest.mark.django_db(transaction=True)
async def test_another_members_file_is_permission_denied_as_google_words_it(member, other_member) -> None:
    theirs = await StoredFile.objects.acreate(
        owner=other_member,
        mime_type="text/plain",
        storage_name="s",
        state="ACTIVE",
        expires_at=timezone.now() + datetime.timedelta(hours=1),
    )

    with pytest.raises(ApiError) as raised:
        await references.owned_files([theirs.id], member.pk)

    assert (raised.value.http_status, raised.value.status) == (403, "PERMISSION_DENIED")
    assert raised.value.message == f"You do not have permission to access the File {theirs.id} or it may not exist."


@pytest.mark.django_db(transaction=True)
async def test_an_unknown_or_expired_file_is_refused_the_same_way(member) -> None:
    expired = await StoredFile.objects.acreate(
        owner=member, mime_type="text/plain", storage_name="s", state="ACTIVE", expires_at=timezone.now()
    )

    for file_id in ("nosuchfile12", expired.id):
        with pytest.raises(ApiError) as raised:
            await references.owned_files([file_id], member.pk)
        assert raised.value.http_status == 403


@pytest.mark.django_db(transaction=True)
async def test_a_file_not_yet_active_is_a_failed_precondition(member) -> None:
    pending = await StoredFile.objects.acreate(
        owner=member, mime_type="text/plain", state="UPLOADING", expires_at=timezone.now() + datetime.timedelta(hours=1)
    )

    with pytest.raises(ApiError) as raised:
        await references.owned_files([pending.id], member.pk)

    assert (raised.value.http_status, raised.value.status) == (400, "FAILED_PRECONDITION")


@pytest.mark.django_db(transaction=True)
async def test_a_name_that_cannot_be_a_file_is_invalid_argument(member) -> None:
    with pytest.raises(ApiError) as raised:
        await references.owned_files(["../etc"], member.pk)

    assert (raised.value.http_status, raised.value.status) == (400, "INVALID_ARGUMENT")


@pytest.mark.django_db(transaction=True)
async def test_a_body_naming_thousands_of_files_is_refused_before_any_lookup(member) -> None:
    many = [f"f{n}" for n in range(references.MAX_FILES_PER_REQUEST + 1)]

    with pytest.raises(ApiError) as raised:
        await references.owned_files(many, member.pk)

    assert raised.value.http_status == 400
