"""Uploads are calls (the key's request limits apply) and have limits of their own: bytes and files kept per key."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from accounts import usage
from accounts.models import DefaultLimits, UsageRecord
from resources.models import StoredFile
from tests.api_doubles import asgi_call
from tests.files_client import send_chunk, start_upload, stored_files

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures", "tests.files_fixtures"]


def media_upload(secret: str, data: bytes):
    return asgi_call(
        "POST",
        "/upload/v1beta/files",
        query="uploadType=media",
        headers={"x-goog-api-key": secret, "content-type": "text/plain"},
        body=data,
    )


async def test_a_declared_size_over_the_keys_storage_limit_is_refused_before_any_byte(amake_key, file_storage) -> None:
    _, secret = await amake_key(storage_bytes=1000)

    answer = await start_upload({"x-goog-api-key": secret}, {}, size=1001)

    assert answer.status == 429
    assert answer.error["status"] == "RESOURCE_EXHAUSTED"
    assert answer.error["details"][0]["violations"][0]["quotaId"] == "storage_bytes"
    assert await StoredFile.objects.acount() == 0


async def test_the_limit_counts_what_the_key_already_stores(amake_key, file_storage) -> None:
    _, secret = await amake_key(storage_bytes=1000)
    assert (await media_upload(secret, b"x" * 600)).status == 200

    answer = await media_upload(secret, b"y" * 500)

    assert answer.status == 429
    assert len(stored_files(file_storage)) == 1


async def test_undeclared_bytes_are_cut_off_at_the_limit_and_nothing_is_kept(amake_key, file_storage) -> None:
    _, secret = await amake_key(storage_bytes=1000)
    started = await start_upload({"x-goog-api-key": secret}, {}, size=None)
    url = started.headers["x-goog-upload-url"]
    assert (await send_chunk(url, b"a" * 800, 0)).status == 200

    answer = await send_chunk(url, b"b" * 300, 800, finalize=True)

    assert answer.status == 429
    assert answer.headers["x-goog-upload-status"] == "final"
    assert stored_files(file_storage) == []
    assert await StoredFile.objects.acount() == 0


async def test_an_upload_in_progress_holds_its_declared_room(amake_key, file_storage) -> None:
    _, secret = await amake_key(storage_bytes=1000)
    assert (await start_upload({"x-goog-api-key": secret}, {}, size=700)).status == 200

    answer = await start_upload({"x-goog-api-key": secret}, {}, size=400)

    assert answer.status == 429


async def test_the_file_count_limit_refuses_one_file_more(amake_key, file_storage) -> None:
    _, secret = await amake_key(file_count=2)
    for _ in range(2):
        assert (await media_upload(secret, b"x")).status == 200

    answer = await media_upload(secret, b"x")

    assert answer.status == 429
    assert answer.error["details"][0]["violations"][0]["quotaId"] == "file_count"


async def test_the_members_default_applies_unless_the_key_says_otherwise(member, amake_key, file_storage) -> None:
    await DefaultLimits.objects.acreate(user=member, file_count=1)
    _, default_secret = await amake_key()
    _, lifted_secret = await amake_key(file_count=0)

    assert (await media_upload(default_secret, b"x")).status == 200
    assert (await media_upload(default_secret, b"x")).status == 429
    assert (await media_upload(lifted_secret, b"x")).status == 200
    assert (await media_upload(lifted_secret, b"x")).status == 200


async def test_deleting_a_file_frees_its_room(amake_key, file_storage) -> None:
    _, secret = await amake_key(file_count=1)
    uploaded = (await media_upload(secret, b"x")).json()["file"]
    await asgi_call("DELETE", f"/v1beta/{uploaded['name']}", headers={"x-goog-api-key": secret})

    assert (await media_upload(secret, b"x")).status == 200


async def test_an_upload_counts_as_a_call_against_the_keys_request_limit(amake_key, file_storage) -> None:
    _, secret = await amake_key(rpm=1)
    assert (await start_upload({"x-goog-api-key": secret}, {}, size=3)).status == 200

    answer = await start_upload({"x-goog-api-key": secret}, {}, size=3)

    assert answer.status == 429
    assert answer.error["status"] == "RESOURCE_EXHAUSTED"


async def test_every_upload_and_file_call_is_recorded_with_its_size(amake_key, file_storage) -> None:
    key, secret = await amake_key()
    header = {"x-goog-api-key": secret}
    started = await start_upload(header, {}, size=1234)
    done = await send_chunk(started.headers["x-goog-upload-url"], b"z" * 1234, 0, finalize=True)
    name = done.json()["file"]["name"]
    await asgi_call("GET", f"/v1beta/{name}", headers=header)
    await asgi_call("GET", "/v1beta/files", headers=header)
    await asgi_call("DELETE", f"/v1beta/{name}", headers=header)
    await media_upload(secret, b"q" * 10)
    await start_upload(header, {}, size=-1)

    await sync_to_async(usage.flush)()

    rows = [row async for row in UsageRecord.objects.filter(key_id=key.pk).order_by("id")]
    assert [(r.method, r.status_code, r.request_bytes) for r in rows] == [
        ("files.upload", 200, 1234),
        ("files.get", 200, 0),
        ("files.list", 200, 0),
        ("files.delete", 200, 0),
        ("files.upload", 200, 10),
        ("files.upload", 400, 0),
    ]


@pytest.mark.django_db(transaction=True, databases=["default", "postgresql"])
def test_on_postgresql_starts_racing_for_the_last_room_take_it_once(on_postgresql, make_key) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    from gateway.errors import ApiError
    from resources import upload_records
    from resources.upload_records import FileFields

    key, _ = make_key(storage_bytes=1000)

    def start() -> bool:
        try:
            upload_records.start_session(key, FileFields("", "text/plain", 400, ""))
            return True
        except ApiError:
            return False
        finally:
            connections.close_all()

    with ThreadPoolExecutor(6) as pool:
        started = list(pool.map(lambda _: start(), range(6)))

    assert started.count(True) == 2  # 2 x 400 fit in 1000, a third would not
    assert StoredFile.objects.count() == 2
