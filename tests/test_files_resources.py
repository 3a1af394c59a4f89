"""files.get, files.list, files.delete and files/{id}:download: a member's own files, in Google's shapes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from resources.models import StoredFile
from tests.api_doubles import asgi_call
from tests.files_client import start_upload, stored_files

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures", "tests.files_fixtures"]


async def test_get_answers_the_file_as_the_upload_did(key_header, file_storage, upload_whole) -> None:
    uploaded = await upload_whole(b"hello")

    answer = await asgi_call("GET", f"/v1beta/{uploaded['name']}", headers=key_header)

    assert answer.status == 200, answer.body
    assert answer.json() == uploaded


async def test_the_uri_names_the_version_called(key_header, file_storage, upload_whole) -> None:
    uploaded = await upload_whole(b"hello")

    answer = await asgi_call("GET", f"/v1/{uploaded['name']}", headers=key_header)

    assert answer.json()["uri"].endswith(f"/v1/{uploaded['name']}")


async def test_get_needs_a_key(file_storage, upload_whole) -> None:
    uploaded = await upload_whole(b"hello")

    answer = await asgi_call("GET", f"/v1beta/{uploaded['name']}")

    assert (answer.status, answer.error["status"]) == (403, "PERMISSION_DENIED")


async def test_another_members_file_is_as_absent_as_one_that_never_existed(
    key_header, file_storage, upload_whole, amake_key, other_member
) -> None:
    uploaded = await upload_whole(b"secret")
    _, other_secret = await amake_key(other_member)
    other = {"x-goog-api-key": other_secret}

    theirs = await asgi_call("GET", f"/v1beta/{uploaded['name']}", headers=other)
    missing = await asgi_call("GET", "/v1beta/files/nosuchfile123", headers=other)
    deleted = await asgi_call("DELETE", f"/v1beta/{uploaded['name']}", headers=other)
    downloaded = await asgi_call("GET", f"/v1beta/{uploaded['name']}:download", query="alt=media", headers=other)
    listed = await asgi_call("GET", "/v1beta/files", headers=other)

    for answer in (theirs, missing, deleted, downloaded):
        assert (answer.status, answer.error["status"]) == (403, "PERMISSION_DENIED")
    assert theirs.error["message"].replace(uploaded["name"][6:], "ID") == missing.error["message"].replace(
        "nosuchfile123", "ID"
    )
    assert listed.json() == {}
    assert await StoredFile.objects.filter(pk=uploaded["name"][6:]).aexists()


async def test_an_invalid_file_id_is_an_invalid_argument(key_header, file_storage) -> None:
    answer = await asgi_call("GET", "/v1beta/files/Not_An_Id", headers=key_header)

    assert (answer.status, answer.error["status"]) == (400, "INVALID_ARGUMENT")


async def test_list_pages_newest_first_ten_at_a_time_by_default(key_header, file_storage, upload_whole) -> None:
    names = [(await upload_whole(f"file {n}".encode(), display_name=f"n{n}"))["name"] for n in range(12)]

    first = await asgi_call("GET", "/v1beta/files", headers=key_header)
    token = first.json()["nextPageToken"]
    second = await asgi_call("GET", "/v1beta/files", query=f"pageToken={token}", headers=key_header)

    assert [f["name"] for f in first.json()["files"]] == names[::-1][:10]
    assert [f["name"] for f in second.json()["files"]] == names[::-1][10:]
    assert "nextPageToken" not in second.json()


async def test_list_page_size_is_capped_at_a_hundred(key_header, file_storage) -> None:
    now = timezone.now()
    from accounts.models import ProxyKey

    key = await ProxyKey.objects.select_related("user").aget()
    await StoredFile.objects.abulk_create(
        [
            StoredFile(
                owner=key.user, key=key, mime_type="text/plain", state="ACTIVE", expires_at=now + timedelta(days=1)
            )
            for _ in range(105)
        ]
    )

    answer = await asgi_call("GET", "/v1beta/files", query="pageSize=1000", headers=key_header)
    small = await asgi_call("GET", "/v1beta/files", query="pageSize=3", headers=key_header)

    assert len(answer.json()["files"]) == 100
    assert len(small.json()["files"]) == 3


@pytest.mark.parametrize("query", ["pageSize=abc", "pageSize=-1", "pageToken=%%%", "pageToken=bm9wZQ"])
async def test_bad_paging_is_an_invalid_argument(key_header, file_storage, query) -> None:
    answer = await asgi_call("GET", "/v1beta/files", query=query, headers=key_header)

    assert (answer.status, answer.error["status"]) == (400, "INVALID_ARGUMENT")


async def test_uploads_in_progress_and_expired_files_are_not_shown(key_header, file_storage, upload_whole) -> None:
    await start_upload({"x-goog-api-key": key_header["x-goog-api-key"]}, {}, size=10)
    expired = await upload_whole(b"old")
    await StoredFile.objects.filter(pk=expired["name"][6:]).aupdate(expires_at=timezone.now() - timedelta(seconds=1))

    listed = await asgi_call("GET", "/v1beta/files", headers=key_header)
    got = await asgi_call("GET", f"/v1beta/{expired['name']}", headers=key_header)

    assert listed.json() == {}
    assert got.status == 403


async def test_delete_removes_the_file_and_its_bytes(key_header, file_storage, upload_whole) -> None:
    uploaded = await upload_whole(b"bye")

    answer = await asgi_call("DELETE", f"/v1beta/{uploaded['name']}", headers=key_header, body=b"{}")
    again = await asgi_call("GET", f"/v1beta/{uploaded['name']}", headers=key_header)

    assert (answer.status, answer.json()) == (200, {})
    assert again.status == 403
    assert stored_files(file_storage) == []


async def test_download_streams_the_bytes(key_header, file_storage, upload_whole) -> None:
    data = bytes(range(256)) * 9000  # past one storage read
    uploaded = await upload_whole(data)

    answer = await asgi_call("GET", f"/v1beta/{uploaded['name']}:download", query="alt=media", headers=key_header)

    assert answer.status == 200
    assert answer.body == data
    assert answer.headers["content-length"] == str(len(data))
    assert answer.headers["content-disposition"] == "attachment"
    assert answer.headers["x-content-type-options"] == "nosniff"


async def test_download_without_alt_media_is_refused(key_header, file_storage, upload_whole) -> None:
    uploaded = await upload_whole(b"x")

    answer = await asgi_call("GET", f"/v1beta/{uploaded['name']}:download", headers=key_header)

    assert (answer.status, answer.error["status"]) == (400, "INVALID_ARGUMENT")


async def test_a_generated_file_is_downloaded_through_its_account(key_header, file_storage, monkeypatch) -> None:
    from django.http import HttpResponse

    from accounts.models import ProxyKey
    from resources import generated

    key = await ProxyKey.objects.select_related("user").aget()
    stored = await StoredFile.objects.acreate(
        owner=key.user,
        key=key,
        mime_type="application/jsonl",
        state="ACTIVE",
        source="GENERATED",
        expires_at=timezone.now() + timedelta(days=1),
    )
    relayed = []

    async def relay_download(request, file):
        relayed.append(file.pk)
        return HttpResponse(b"relayed")

    monkeypatch.setattr(generated, "relay_download", relay_download)

    answer = await asgi_call("GET", f"/v1beta/files/{stored.pk}:download", query="alt=media", headers=key_header)

    assert (answer.status, answer.body, relayed) == (200, b"relayed", [stored.pk])


async def test_a_file_whose_bytes_are_missing_is_a_clean_internal_error(key_header, file_storage, upload_whole) -> None:
    uploaded = await upload_whole(b"gone")
    for path in stored_files(file_storage):
        path.unlink()

    answer = await asgi_call("GET", f"/v1beta/{uploaded['name']}:download", query="alt=media", headers=key_header)

    assert (answer.status, answer.error["status"]) == (500, "INTERNAL")
