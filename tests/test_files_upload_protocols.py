"""Uploads end at the gateway: the resumable protocol as both SDKs drive it, multipart and media for curl users.

Every request goes through the real ASGI application (routing, the API
handler), and the bytes land in a real folder storage.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from accounts.models import ProxyKey
from resources import storage
from resources.models import StoredFile, UploadSession
from tests.api_doubles import asgi_call
from tests.files_client import send_chunk, send_chunk_unsized, sha256_field, start_upload, stored_files, upload_query

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures", "tests.files_fixtures"]

DATA = bytes(range(256)) * 40  # 10,240 bytes


def key_only(key_header: dict[str, str]) -> dict[str, str]:
    return {"x-goog-api-key": key_header["x-goog-api-key"]}


async def test_the_python_sdks_way_uploads_in_chunks_without_a_key(key_header, file_storage, settings) -> None:
    settings.PUBLIC_BASE_URL = "https://gemproxy.example.org"
    started = await start_upload(
        key_only(key_header), {"file": {"display_name": "notes", "size_bytes": len(DATA)}}, size=len(DATA)
    )

    assert started.status == 200, started.body
    url = started.headers["x-goog-upload-url"]
    assert url.startswith("https://gemproxy.example.org/upload/v1beta/files?upload_id=")
    assert started.headers["x-goog-upload-status"] == "active"

    first = await send_chunk(url, DATA[:4096], 0)
    assert (first.status, first.headers["x-goog-upload-status"]) == (200, "active")
    last = await send_chunk(url, DATA[4096:], 4096, finalize=True)

    assert last.status == 200, last.body
    assert last.headers["x-goog-upload-status"] == "final"
    file = last.json()["file"]
    file_id = file["name"].removeprefix("files/")
    assert file == {
        "name": f"files/{file_id}",
        "displayName": "notes",
        "mimeType": "text/plain",
        "sizeBytes": str(len(DATA)),
        "createTime": file["createTime"],
        "updateTime": file["updateTime"],
        "expirationTime": file["expirationTime"],
        "sha256Hash": sha256_field(DATA),
        "uri": f"https://gemproxy.example.org/v1beta/files/{file_id}",
        "state": "ACTIVE",
        "source": "UPLOADED",
    }
    assert file_id.isalnum() and file_id == file_id.lower()
    [path] = stored_files(file_storage)  # the parts are gone, one object is left
    assert path.read_bytes() == DATA


async def test_the_js_sdks_way_sends_camel_case_a_string_size_and_the_key_with_each_chunk(
    key_header, file_storage
) -> None:
    started = await start_upload(
        key_only(key_header),
        {"file": {"displayName": "js", "mimeType": "text/plain", "sizeBytes": str(len(DATA))}},
        size=None,
    )
    url = started.headers["x-goog-upload-url"]

    done = await send_chunk(url, DATA, 0, finalize=True, headers=key_only(key_header))

    assert done.status == 200, done.body
    assert done.json()["file"]["displayName"] == "js"
    assert done.json()["file"]["sizeBytes"] == str(len(DATA))


async def test_the_upload_url_is_on_the_requests_own_host_without_a_public_base_url(key_header, file_storage) -> None:
    started = await start_upload(key_only(key_header), {}, size=10)

    assert started.headers["x-goog-upload-url"].startswith("http://127.0.0.1:8000/upload/v1beta/files?upload_id=")


async def test_a_chunk_at_the_wrong_offset_is_refused_and_told_where_to_resume(key_header, file_storage) -> None:
    started = await start_upload(key_only(key_header), {}, size=len(DATA))
    url = started.headers["x-goog-upload-url"]
    await send_chunk(url, DATA[:100], 0)

    wrong = await send_chunk(url, DATA[200:300], 200)

    assert wrong.status == 400
    assert wrong.error["status"] == "INVALID_ARGUMENT"
    assert wrong.headers["x-goog-upload-status"] == "active"
    assert wrong.headers["x-goog-upload-size-received"] == "100"
    resumed = await send_chunk(url, DATA[100:], 100, finalize=True)
    assert resumed.status == 200, resumed.body
    assert stored_files(file_storage)[0].read_bytes() == DATA


async def test_a_query_reports_the_bytes_received(key_header, file_storage) -> None:
    started = await start_upload(key_only(key_header), {}, size=len(DATA))
    url = started.headers["x-goog-upload-url"]
    await send_chunk(url, DATA[:321], 0)

    asked = await asgi_call(
        "POST", "/upload/v1beta/files", query=upload_query(url), headers={"x-goog-upload-command": "query"}
    )

    assert asked.status == 200
    assert asked.headers["x-goog-upload-size-received"] == "321"


async def test_an_unknown_upload_id_is_not_found_and_ends_the_upload(file_storage) -> None:
    answer = await send_chunk("http://h/upload/v1beta/files?upload_id=nosuchupload&upload_protocol=resumable", b"x", 0)

    assert answer.status == 404
    assert answer.error["status"] == "NOT_FOUND"
    assert answer.headers["x-goog-upload-status"] == "final"


async def test_a_chunk_past_the_declared_size_cancels_the_upload_before_storing_it(key_header, file_storage) -> None:
    started = await start_upload(key_only(key_header), {}, size=100)
    url = started.headers["x-goog-upload-url"]

    answer = await send_chunk(url, DATA[:101], 0)

    assert answer.status == 400
    assert answer.headers["x-goog-upload-status"] == "final"
    assert "declared size of 100" in answer.error["message"]
    assert stored_files(file_storage) == []
    assert await StoredFile.objects.acount() == 0
    assert (await send_chunk(url, DATA[:100], 0, finalize=True)).status == 404


async def test_finalizing_short_of_the_declared_size_is_refused_and_leaves_nothing(key_header, file_storage) -> None:
    started = await start_upload(key_only(key_header), {}, size=200)
    url = started.headers["x-goog-upload-url"]

    answer = await send_chunk(url, DATA[:150], 0, finalize=True)

    assert answer.status == 400
    assert "150 byte(s) received, 200 declared" in answer.error["message"]
    assert stored_files(file_storage) == []
    assert await UploadSession.objects.acount() == 0


async def test_a_cancelled_upload_leaves_nothing(key_header, file_storage) -> None:
    started = await start_upload(key_only(key_header), {}, size=len(DATA))
    url = started.headers["x-goog-upload-url"]
    await send_chunk(url, DATA[:500], 0)

    answer = await asgi_call(
        "POST", "/upload/v1beta/files", query=upload_query(url), headers={"x-goog-upload-command": "cancel"}
    )

    assert answer.headers["x-goog-upload-status"] == "cancelled"
    assert stored_files(file_storage) == []
    assert await StoredFile.objects.acount() == 0


async def test_another_members_key_on_a_chunk_is_refused(key_header, file_storage, amake_key, other_member) -> None:
    started = await start_upload(key_only(key_header), {}, size=len(DATA))
    _, other_secret = await amake_key(other_member)

    answer = await send_chunk(
        started.headers["x-goog-upload-url"], DATA, 0, finalize=True, headers={"x-goog-api-key": other_secret}
    )

    assert answer.status == 403
    assert answer.error["status"] == "PERMISSION_DENIED"
    assert stored_files(file_storage) == []


async def test_chunks_stop_working_once_the_starting_key_is_revoked(amake_key, file_storage) -> None:
    key, secret = await amake_key()
    started = await start_upload({"x-goog-api-key": secret}, {}, size=len(DATA))
    await ProxyKey.objects.filter(pk=key.pk).aupdate(is_active=False)

    answer = await send_chunk(started.headers["x-goog-upload-url"], DATA, 0, finalize=True)

    assert answer.status in (400, 403)
    assert answer.headers["x-goog-upload-status"] == "final"
    assert stored_files(file_storage) == []


async def test_starting_needs_a_valid_key(file_storage) -> None:
    missing = await start_upload({}, {}, size=10)
    wrong = await start_upload({"x-goog-api-key": "gpk_not-a-real-key"}, {}, size=10)

    assert (missing.status, missing.error["status"]) == (403, "PERMISSION_DENIED")
    assert (wrong.status, wrong.error["status"]) == (400, "INVALID_ARGUMENT")
    assert await StoredFile.objects.acount() == 0


@pytest.mark.parametrize(
    ("headers", "metadata", "words"),
    [
        ({"x-goog-upload-header-content-length": "-5"}, {}, "TYPE_INT64"),
        ({"x-goog-upload-header-content-length": "12abc"}, {}, "TYPE_INT64"),
        ({"x-goog-upload-header-content-length": str(3 * 1024**3)}, {}, "at most"),
        ({"x-goog-upload-header-content-length": "10"}, {"file": {"size_bytes": 11}}, "sizeBytes is 11"),
        ({"x-goog-upload-header-content-type": "not a type"}, {}, "Invalid MIME type"),
        ({}, {"file": {"display_name": "x" * 513}}, "display name"),
        ({}, {"file": {"display_name": 5}}, "display_name"),
        ({}, {"file": {"name": "files/Bad_Name"}}, "Invalid file name"),
        ({}, {"file": "text"}, '"file" must be an object'),
        ({"x-goog-upload-command": "start, explode"}, {}, "X-Goog-Upload-Command"),
    ],
)
async def test_a_hostile_start_is_refused_in_googles_shape(key_header, file_storage, headers, metadata, words) -> None:
    answer = await asgi_call(
        "POST",
        "/upload/v1beta/files",
        headers={
            **key_only(key_header),
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-type": "text/plain",
            **headers,
        },
        body=json.dumps(metadata).encode(),
    )

    assert answer.status == 400, answer.body
    assert answer.error["status"] == "INVALID_ARGUMENT"
    assert words in answer.error["message"]
    assert await StoredFile.objects.acount() == 0


async def test_a_start_body_that_is_not_json_is_refused(key_header, file_storage) -> None:
    answer = await asgi_call(
        "POST",
        "/upload/v1beta/files",
        headers={**key_only(key_header), "x-goog-upload-protocol": "resumable", "x-goog-upload-command": "start"},
        body=b"\x00\xff{",
    )

    assert answer.status == 400
    assert "Invalid JSON payload" in answer.error["message"]


@pytest.mark.parametrize("offset", ["", "-1", "1e3", "0x10", "99999999999999999999999"])
async def test_a_malformed_offset_is_refused(key_header, file_storage, offset) -> None:
    started = await start_upload(key_only(key_header), {}, size=10)
    answer = await asgi_call(
        "POST",
        "/upload/v1beta/files",
        query=upload_query(started.headers["x-goog-upload-url"]),
        headers={"x-goog-upload-command": "upload", "x-goog-upload-offset": offset},
        body=b"0123456789",
    )

    assert answer.status == 400
    assert answer.headers["x-goog-upload-status"] == "active"
    assert stored_files(file_storage) == []


async def test_a_user_chosen_name_is_kept_and_cannot_be_taken_twice(key_header, file_storage, upload_whole) -> None:
    started = await start_upload(key_only(key_header), {"file": {"name": "files/my-report-1"}}, size=3)
    done = await send_chunk(started.headers["x-goog-upload-url"], b"abc", 0, finalize=True)
    again = await start_upload(key_only(key_header), {"file": {"name": "my-report-1"}}, size=3)

    assert done.json()["file"]["name"] == "files/my-report-1"
    assert (again.status, again.error["status"]) == (409, "ALREADY_EXISTS")


def multipart_body(
    metadata: dict, data: bytes, media_type: str = "application/pdf", boundary: str = "b0undary"
) -> bytes:
    return (
        f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode()
        + json.dumps(metadata).encode()
        + f"\r\n--{boundary}\r\nContent-Type: {media_type}\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )


async def test_a_multipart_upload_stores_the_media_part_as_it_is(key_header, file_storage) -> None:
    data = DATA + b"\r\n--b0undar" + DATA  # a near-boundary inside the bytes stays bytes
    answer = await asgi_call(
        "POST",
        "/upload/v1beta/files",
        query="uploadType=multipart",
        headers={**key_only(key_header), "content-type": "multipart/related; boundary=b0undary"},
        body=multipart_body({"file": {"displayName": "report"}}, data),
    )

    assert answer.status == 200, answer.body
    file = answer.json()["file"]
    assert (file["displayName"], file["mimeType"], file["sizeBytes"]) == ("report", "application/pdf", str(len(data)))
    assert file["sha256Hash"] == sha256_field(data)
    assert stored_files(file_storage)[0].read_bytes() == data


@pytest.mark.parametrize(
    ("content_type", "body", "words"),
    [
        ("application/json", b"{}", "multipart/related"),
        ("multipart/related", b"{}", "no valid boundary"),
        ("multipart/related; boundary=zz", b"--zz\r\n\r\n{}\r\n--zz\r\n\r\nabc", "closing boundary"),
        ("multipart/related; boundary=zz", b"--zz\r\n\r\n{}\r\n--zz--", "two parts"),
        (
            "multipart/related; boundary=zz",
            b"--zz\r\n\r\n" + b"{" * 70000 + b"\r\n--zz\r\n\r\nabc\r\n--zz--",
            "larger than",
        ),
        ("multipart/related; boundary=zz", b"--zz\r\n\r\n[1]\r\n--zz\r\n\r\nabc\r\n--zz--", "JSON object"),
    ],
)
async def test_a_malformed_multipart_upload_is_refused_and_stores_nothing(
    key_header, file_storage, content_type, body, words
) -> None:
    answer = await asgi_call(
        "POST",
        "/upload/v1beta/files",
        query="uploadType=multipart",
        headers={**key_only(key_header), "content-type": content_type},
        body=body,
    )

    assert answer.status == 400, answer.body
    assert words in answer.error["message"]
    assert stored_files(file_storage) == []
    assert await StoredFile.objects.acount() == 0


async def test_a_media_upload_takes_its_type_from_content_type(key_header, file_storage) -> None:
    answer = await asgi_call(
        "POST",
        "/upload/v1beta/files",
        query="uploadType=media",
        headers={**key_only(key_header), "content-type": "image/png"},
        body=DATA,
    )

    assert answer.status == 200, answer.body
    file = answer.json()["file"]
    assert (file["mimeType"], file["sizeBytes"], file["state"]) == ("image/png", str(len(DATA)), "ACTIVE")
    assert hashlib.sha256(stored_files(file_storage)[0].read_bytes()).hexdigest() == hashlib.sha256(DATA).hexdigest()


async def test_an_upload_without_a_protocol_is_refused(key_header, file_storage) -> None:
    answer = await asgi_call("POST", "/upload/v1beta/files", headers=key_only(key_header), body=DATA)

    assert answer.status == 400
    assert "upload protocol" in answer.error["message"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_other_methods_on_the_upload_path_are_not_found_in_googles_shape(method) -> None:
    answer = await asgi_call(method, "/upload/v1beta/files")

    assert answer.status == 404
    assert answer.error["status"] == "NOT_FOUND"


@pytest.mark.parametrize("path", ["/upload/v1beta/files/x", "/upload/v9/files", "/download/v1beta/files", "/download"])
async def test_unknown_paths_under_upload_and_download_are_not_found_in_googles_shape(path) -> None:
    answer = await asgi_call("POST", path, body=b"{}")

    assert answer.status == 404
    assert answer.headers["content-type"] == "application/json; charset=UTF-8"
    assert answer.error["status"] == "NOT_FOUND"


async def test_a_chunk_without_a_content_length_is_read_to_its_end(key_header, file_storage) -> None:
    started = await start_upload(key_only(key_header), {}, size=len(DATA))

    done = await send_chunk_unsized(started.headers["x-goog-upload-url"], DATA, 0, finalize=True)

    assert done.status == 200, done.body
    assert stored_files(file_storage)[0].read_bytes() == DATA


async def test_an_unsized_chunk_past_the_declared_size_is_cut_off(key_header, file_storage) -> None:
    started = await start_upload(key_only(key_header), {}, size=100)

    answer = await send_chunk_unsized(started.headers["x-goog-upload-url"], DATA[:150], 0, finalize=True)

    assert answer.status == 400
    assert answer.headers["x-goog-upload-status"] == "final"
    assert stored_files(file_storage) == []


async def test_two_finalizes_racing_make_one_file(key_header, file_storage) -> None:
    started = await start_upload(key_only(key_header), {}, size=len(DATA))
    url = started.headers["x-goog-upload-url"]
    await send_chunk(url, DATA, 0)

    answers = await asyncio.gather(*(send_chunk(url, b"", len(DATA), finalize=True) for _ in range(3)))

    assert sorted(answer.status for answer in answers)[0] == 200
    assert [answer.status for answer in answers].count(200) == 1
    assert await StoredFile.objects.filter(state="ACTIVE").acount() == 1
    assert len(stored_files(file_storage)) == 1


async def test_a_finalize_whose_parts_vanish_as_another_finishes_is_told_it_was_finalized(
    key_header, file_storage, monkeypatch
) -> None:
    started = await start_upload(key_only(key_header), {}, size=len(DATA))
    url = started.headers["x-goog-upload-url"]
    await send_chunk(url, DATA, 0)

    def parts_already_deleted(names):  # what a racing finalize that won leaves this one to read
        raise FileNotFoundError(names[0])
        yield b""

    monkeypatch.setattr(storage, "joined", parts_already_deleted)
    answer = await send_chunk(url, b"", len(DATA), finalize=True)

    assert answer.status == 404
    assert answer.headers["x-goog-upload-status"] == "final"
    assert [path for path in stored_files(file_storage) if path.parent.name == "files"] == []  # no partial file
