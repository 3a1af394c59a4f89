"""One upload across gateway processes: started on one, chunks to either, the file seen by both.

The distributed install: PostgreSQL for the rows, Redis for the rest, and one
files folder that both processes share (as an S3 bucket would be shared).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, Gateway

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def two_gateways(distributed: Deployment) -> tuple[Gateway, Gateway, str]:
    key = distributed.proxy_key("erin")
    return distributed.start_gateway("files-a"), distributed.start_gateway("files-b"), key


def post(gateway: Gateway, path: str, headers: dict[str, str], body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=60)
    connection.request("POST", path, body=body, headers=headers)
    answer = connection.getresponse()
    return answer, answer.read()


def test_chunks_sent_to_alternating_processes_make_one_file(two_gateways) -> None:
    gateway_a, gateway_b, key = two_gateways
    data = os.urandom(5 * MIB + 99)
    started, _ = post(
        gateway_a,
        "/upload/v1beta/files",
        {
            "x-goog-api-key": key,
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": str(len(data)),
            "x-goog-upload-header-content-type": "application/octet-stream",
            "content-type": "application/json",
        },
        b"{}",
    )
    url = urlsplit(started.getheader("x-goog-upload-url"))
    offsets = list(range(0, len(data), MIB))
    for n, offset in enumerate(offsets):
        last = n == len(offsets) - 1
        answer, body = post(
            (gateway_a, gateway_b)[n % 2],
            f"{url.path}?{url.query}",
            {"x-goog-upload-command": "upload, finalize" if last else "upload", "x-goog-upload-offset": str(offset)},
            data[offset : offset + MIB],
        )
        assert answer.status == 200, body
    file = json.loads(body)["file"]

    seen_by_a = sdk_client(gateway_a, key, "v1beta").files.get(name=file["name"])
    downloaded = sdk_client(gateway_b, key, "v1beta").files.download(file=file["name"])

    assert seen_by_a.size_bytes == len(data)
    assert hashlib.sha256(downloaded).digest() == hashlib.sha256(data).digest()


def test_the_sdk_uploads_through_one_process_and_lists_through_the_other(two_gateways) -> None:
    gateway_a, gateway_b, key = two_gateways
    file = sdk_client(gateway_b, key, "v1beta").files.upload(
        file=io.BytesIO(b"b" * 1000), config={"mime_type": "text/plain"}
    )

    listed = [f.name for f in sdk_client(gateway_a, key, "v1beta").files.list()]

    assert file.name in listed
