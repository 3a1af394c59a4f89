"""The stand-in's Files API behaves as Google's: proven with the official SDK and raw resumable requests."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from collections.abc import AsyncIterator

import aiohttp
import pytest
from google import genai
from google.genai import errors, types

from executors.standin.errors import GoogleError
from executors.standin.files import FileStore, file_references
from tests.fake_upstream import FakeUpstream

MODEL = "gemini-2.5-flash"


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(valid_keys={"key-a", "key-b"}, file_processing_seconds=0.3) as upstream:
        yield upstream


def client(fake: FakeUpstream, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options={"base_url": fake.url, "api_version": "v1beta"})


async def upload(fake: FakeUpstream, key: str, data: bytes, mime: str = "application/pdf") -> types.File:
    return await client(fake, key).aio.files.upload(
        file=io.BytesIO(data), config={"mime_type": mime, "display_name": "report"}
    )


async def active(fake: FakeUpstream, key: str, name: str) -> types.File:
    for _ in range(50):
        found = await client(fake, key).aio.files.get(name=name)
        if found.state == types.FileState.ACTIVE:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never became ACTIVE")


async def test_the_sdk_uploads_in_chunks_and_gets_google_shaped_file(fake: FakeUpstream) -> None:
    data = bytes(range(256)) * (40 * 1024)  # 10 MiB: two of the SDK's 8 MiB chunks

    uploaded = await upload(fake, "key-a", data)

    assert uploaded.name.startswith("files/") and uploaded.name[6:].isalnum()
    assert uploaded.size_bytes == len(data)
    assert uploaded.mime_type == "application/pdf" and uploaded.display_name == "report"
    assert uploaded.state == types.FileState.PROCESSING
    assert uploaded.uri == f"{fake.url}/v1beta/{uploaded.name}"
    assert base64.b64decode(uploaded.sha256_hash).decode() == hashlib.sha256(data).hexdigest()
    assert (uploaded.expiration_time - uploaded.create_time).total_seconds() == 48 * 3600
    chunks = [r for r in fake.requests if "upload_id=" in r.query]
    assert [r.headers["x-goog-upload-command"] for r in chunks] == ["upload", "upload, finalize"]
    assert [r.headers["x-goog-upload-offset"] for r in chunks] == ["0", str(8 * 1024 * 1024)]
    assert all("x-goog-api-key" not in r.headers for r in chunks)  # the upload id is the authority


async def test_a_file_turns_active_after_processing(fake: FakeUpstream) -> None:
    uploaded = await upload(fake, "key-a", b"%PDF-1.4 tiny")

    found = await active(fake, "key-a", uploaded.name)

    assert found.state == types.FileState.ACTIVE


async def test_another_key_gets_permission_denied_on_get(fake: FakeUpstream) -> None:
    uploaded = await upload(fake, "key-a", b"%PDF-1.4 tiny")

    with pytest.raises(errors.ClientError) as raised:
        await client(fake, "key-b").aio.files.get(name=uploaded.name)

    assert raised.value.code == 403 and raised.value.status == "PERMISSION_DENIED"
    assert f"File {uploaded.name[6:]} or it may not exist" in raised.value.message


async def test_an_unknown_file_is_permission_denied_too(fake: FakeUpstream) -> None:
    with pytest.raises(errors.ClientError) as raised:
        await client(fake, "key-a").aio.files.get(name="files/nosuchfile1")

    assert raised.value.code == 403


async def test_generate_content_refers_only_to_the_callers_own_files(fake: FakeUpstream) -> None:
    uploaded = await active(fake, "key-a", (await upload(fake, "key-a", b"%PDF-1.4 tiny")).name)
    contents = [types.Part.from_uri(file_uri=uploaded.uri, mime_type="application/pdf"), "summarise"]

    own = await client(fake, "key-a").aio.models.generate_content(model=MODEL, contents=contents)
    with pytest.raises(errors.ClientError) as raised:
        await client(fake, "key-b").aio.models.count_tokens(model=MODEL, contents=contents)

    assert uploaded.uri in own.text
    assert raised.value.code == 403 and raised.value.status == "PERMISSION_DENIED"


async def test_a_file_still_processing_is_a_failed_precondition(fake: FakeUpstream) -> None:
    uploaded = await upload(fake, "key-a", b"%PDF-1.4 tiny")
    contents = [types.Part.from_uri(file_uri=uploaded.name, mime_type="application/pdf"), "summarise"]

    with pytest.raises(errors.ClientError) as raised:
        await client(fake, "key-a").aio.models.generate_content(model=MODEL, contents=contents)

    assert raised.value.code == 400 and raised.value.status == "FAILED_PRECONDITION"


async def test_list_shows_only_the_keys_files_and_delete_removes(fake: FakeUpstream) -> None:
    mine = await upload(fake, "key-a", b"a")
    await upload(fake, "key-b", b"b")

    listed = [f.name async for f in await client(fake, "key-a").aio.files.list()]
    await client(fake, "key-a").aio.files.delete(name=mine.name)

    assert listed == [mine.name]
    assert [f async for f in await client(fake, "key-a").aio.files.list()] == []


async def test_a_chunk_at_the_wrong_offset_is_refused(fake: FakeUpstream) -> None:
    async with aiohttp.ClientSession() as http:
        start = await http.post(
            f"{fake.url}/upload/v1beta/files",
            headers={
                "x-goog-api-key": "key-a",
                "X-Goog-Upload-Protocol": "resumable",
                "X-Goog-Upload-Command": "start",
                "X-Goog-Upload-Header-Content-Length": "8",
            },
            json={"file": {"mime_type": "text/plain"}},
        )
        url = start.headers["X-Goog-Upload-URL"]
        first = await http.post(
            url, data=b"abcd", headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"}
        )
        wrong = await http.post(
            url, data=b"efgh", headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "2"}
        )
        short = await http.post(url, data=b"", headers={"X-Goog-Upload-Command": "finalize"})

    assert start.status == 200 and start.headers["X-Goog-Upload-Status"] == "active"
    assert url.startswith(fake.url + "/upload/v1beta/files?upload_id=")
    assert first.status == 200 and first.headers["X-Goog-Upload-Status"] == "active"
    assert wrong.status == 400
    assert short.status == 400  # 4 bytes of the 8 declared


def test_file_references_are_found_at_any_depth_in_both_cases() -> None:
    body = {
        "contents": [{"parts": [{"fileData": {"fileUri": "files/a"}}, {"file_data": {"file_uri": "files/b"}}]}],
        "tools": [{"x": [[{"fileData": {"fileUri": "files/c"}}]]}],
    }

    assert sorted(file_references(body)) == ["files/a", "files/b", "files/c"]


async def test_a_public_url_in_file_data_is_not_a_files_api_reference() -> None:
    # Google fetches a public https URL (or a YouTube one) itself; only files/{id} names a Files API file.
    store = FileStore()
    body = {"contents": [{"parts": [{"fileData": {"fileUri": "https://example.com/cat.png"}}]}]}

    assert store.check_references(body, "any-key") == []
    with pytest.raises(GoogleError):
        store.check_references({"fileData": {"fileUri": "files/nosuchfile"}}, "any-key")
