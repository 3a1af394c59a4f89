"""The official Python SDK's Files API through a real Daphne gateway: upload, get, list, download, delete."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import socket
import time
import urllib.request
from datetime import timedelta

import pytest
from google.genai import errors, types

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, Gateway, free_port
from tests.e2e.raw_http import exchange

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def twenty_mib() -> bytes:
    # Not a multiple of the SDK's 8 MiB chunk: three chunks, the last one short.
    return os.urandom(20 * MIB + 12345)


@pytest.fixture(scope="module")
def uploaded(gateway: Gateway, proxy_key: str, twenty_mib: bytes) -> types.File:
    client = sdk_client(gateway, proxy_key, "v1beta")
    return client.files.upload(
        file=io.BytesIO(twenty_mib), config=types.UploadFileConfig(mime_type="video/mp4", display_name="clip.mp4")
    )


def test_a_20_mib_upload_arrives_whole_and_active(uploaded: types.File, twenty_mib: bytes, gateway: Gateway) -> None:
    assert uploaded.state == types.FileState.ACTIVE
    assert uploaded.size_bytes == len(twenty_mib)
    assert uploaded.mime_type == "video/mp4"
    assert uploaded.display_name == "clip.mp4"
    assert uploaded.source == types.FileSource.UPLOADED
    assert uploaded.uri == f"{gateway.url}/v1beta/{uploaded.name}"
    # Google's sha256Hash is the base64 of the hex digest's text; the SDK passes it on as it is.
    assert base64.b64decode(uploaded.sha256_hash).decode() == hashlib.sha256(twenty_mib).hexdigest()
    assert uploaded.expiration_time - uploaded.create_time == timedelta(hours=48)


def test_get_and_list_find_it(uploaded: types.File, gateway: Gateway, proxy_key: str) -> None:
    client = sdk_client(gateway, proxy_key, "v1beta")

    got = client.files.get(name=uploaded.name)
    listed = [file.name for file in client.files.list(config={"page_size": 5})]

    assert got.name == uploaded.name and got.size_bytes == uploaded.size_bytes
    assert uploaded.name in listed


def test_download_gives_back_the_same_bytes(uploaded: types.File, gateway: Gateway, proxy_key: str, twenty_mib) -> None:
    data = sdk_client(gateway, proxy_key, "v1beta").files.download(file=uploaded.name)

    assert hashlib.sha256(data).digest() == hashlib.sha256(twenty_mib).digest()


def test_another_member_can_neither_see_nor_delete_it(
    uploaded: types.File, gateway: Gateway, deployment: Deployment
) -> None:
    bob = sdk_client(gateway, deployment.proxy_key("bob"), "v1beta")

    with pytest.raises(errors.ClientError) as refused:
        bob.files.get(name=uploaded.name)
    with pytest.raises(errors.ClientError) as not_deleted:
        bob.files.delete(name=uploaded.name)

    assert refused.value.code == 403 and refused.value.status == "PERMISSION_DENIED"
    assert not_deleted.value.code == 403
    assert list(bob.files.list()) == []


def test_the_async_client_uploads_too(gateway: Gateway, proxy_key: str) -> None:
    client = sdk_client(gateway, proxy_key)  # the default API version, v1

    async def upload() -> types.File:
        return await client.aio.files.upload(file=io.BytesIO(b"a" * (9 * MIB)), config={"mime_type": "text/plain"})

    file = asyncio.run(upload())

    assert file.state == types.FileState.ACTIVE
    assert file.size_bytes == 9 * MIB


def test_delete_then_get_is_refused(gateway: Gateway, proxy_key: str) -> None:
    client = sdk_client(gateway, proxy_key, "v1beta")
    file = client.files.upload(file=io.BytesIO(b"short-lived"), config={"mime_type": "text/plain"})

    client.files.delete(name=file.name)

    with pytest.raises(errors.ClientError) as gone:
        client.files.get(name=file.name)
    assert gone.value.code == 403


def test_curl_users_upload_with_multipart(gateway: Gateway, proxy_key: str) -> None:
    boundary = "curl-boundary-123"
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{json.dumps({'file': {'display_name': 'c.txt'}})}"
        f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nfrom curl\r\n--{boundary}--\r\n"
    ).encode()
    request = urllib.request.Request(
        f"{gateway.url}/upload/v1beta/files?uploadType=multipart",
        data=body,
        headers={"x-goog-api-key": proxy_key, "Content-Type": f"multipart/related; boundary={boundary}"},
    )

    with urllib.request.urlopen(request, timeout=30) as answer:
        file = json.load(answer)["file"]

    assert (file["displayName"], file["mimeType"], file["sizeBytes"], file["state"]) == (
        "c.txt",
        "text/plain",
        "9",
        "ACTIVE",
    )


def test_a_request_body_over_the_upload_limit_is_refused_at_the_headers(gateway: Gateway, proxy_key: str) -> None:
    head = (
        "POST /upload/v1beta/files?uploadType=media HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"x-goog-api-key: {proxy_key}\r\nContent-Type: text/plain\r\nContent-Length: {3 * 1024**3}\r\n\r\n"
    )

    answer = exchange(gateway.port, head.encode())

    assert answer.status == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert answer.seconds < 2


def test_the_sweep_command_runs_beside_the_gateway(deployment: Deployment, gateway: Gateway) -> None:
    assert "expired file(s) removed" in deployment.manage("sweep_files")


def _rss(pid: int) -> int:
    for line in open(f"/proc/{pid}/status").read().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_slow_download_does_not_pile_up_in_the_gateways_memory(gateway: Gateway, proxy_key: str) -> None:
    client = sdk_client(gateway, proxy_key, "v1beta")
    file = client.files.upload(file=io.BytesIO(os.urandom(64 * MIB)), config={"mime_type": "video/mp4"})
    pid = gateway.process.popen.pid
    before = _rss(pid)

    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        target = f"/v1beta/{file.name}:download?alt=media"
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nx-goog-api-key: {proxy_key}\r\n\r\n".encode())
        received, grown = 0, 0
        while received < 64 * MIB:
            piece = sock.recv(256 * 1024)
            assert piece, "the download ended early"
            received += len(piece)
            if received % (8 * MIB) < len(piece):
                time.sleep(0.2)  # a slow link: the gateway produces far faster than this reads
                grown = max(grown, _rss(pid) - before)

    assert grown < 24 * MIB, f"the gateway grew by {grown / MIB:.1f} MiB while serving a 64 MiB file slowly"


def test_behind_a_public_base_url_the_sdk_uploads_and_uris_name_that_origin(
    deployment: Deployment, proxy_key: str
) -> None:
    # The public origin names this gateway otherwise than the client's base URL does ("localhost", not 127.0.0.1);
    # the sync Python SDK sends its chunks to the upload URL as answered, so that URL must reach the gateway.
    port = free_port()
    public = f"http://localhost:{port}"
    behind_proxy = deployment.start_gateway("public-origin-gateway", port=port, PUBLIC_BASE_URL=public)
    client = sdk_client(behind_proxy, proxy_key, "v1beta")

    file = client.files.upload(file=io.BytesIO(b"abc"), config={"mime_type": "text/plain"})

    assert file.uri == f"{public}/v1beta/{file.name}"
    chunk_lines = [line for line in behind_proxy.process.log().splitlines() if "upload_id=" in line]
    assert chunk_lines, "the chunks reached this gateway"
