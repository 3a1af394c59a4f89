"""Files in an S3-compatible store (django-storages), tested against moto's S3 server in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from resources import sweep
from resources.models import StoredFile
from tests.api_doubles import asgi_call
from tests.conftest import missing_component
from tests.e2e.harness import free_port
from tests.files_client import send_chunk, sha256_field, start_upload

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures"]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's server mode on a free port: an S3 endpoint speaking the real wire protocol."""
    try:
        import moto.server  # noqa: F401
    except ImportError as error:
        missing_component(f"moto[server] is not installed: {error}")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("moto's S3 server did not start")
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture
def bucket(s3_endpoint: str, settings) -> Iterator[object]:
    import boto3

    name = f"gemproxy-{uuid.uuid4().hex[:12]}"
    options = {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}
    credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    client = boto3.client("s3", **options, **credentials)
    client.create_bucket(Bucket=name)
    settings.GEMPROXY_FILES_SWEEP_INTERVAL = 0
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "access_key": "test",
                "secret_key": "test",
                "default_acl": None,
                "file_overwrite": False,
            },
        },
    }

    class Bucket:
        def keys(self) -> list[str]:
            return sorted(item["Key"] for item in client.list_objects_v2(Bucket=name).get("Contents", []))

        def read(self, key: str) -> bytes:
            return client.get_object(Bucket=name, Key=key)["Body"].read()

    yield Bucket()


async def test_a_resumable_upload_lands_in_the_bucket_as_one_object(key_header, bucket) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    started = await start_upload({"x-goog-api-key": key_header["x-goog-api-key"]}, {}, size=len(data))
    url = started.headers["x-goog-upload-url"]
    assert (await send_chunk(url, data[: 2 * 1024 * 1024], 0)).status == 200
    assert len(bucket.keys()) == 1  # the first part

    done = await send_chunk(url, data[2 * 1024 * 1024 :], 2 * 1024 * 1024, finalize=True)

    assert done.status == 200, done.body
    assert done.json()["file"]["sha256Hash"] == sha256_field(data)
    [key] = bucket.keys()
    assert bucket.read(key) == data


async def test_download_and_delete_work_from_the_bucket(key_header, bucket) -> None:
    answer = await asgi_call(
        "POST",
        "/upload/v1beta/files",
        query="uploadType=media",
        headers={"x-goog-api-key": key_header["x-goog-api-key"], "content-type": "application/pdf"},
        body=b"%PDF-1.7 tiny",
    )
    name = answer.json()["file"]["name"]

    downloaded = await asgi_call("GET", f"/v1beta/{name}:download", query="alt=media", headers=key_header)
    deleted = await asgi_call("DELETE", f"/v1beta/{name}", headers=key_header)

    assert downloaded.body == b"%PDF-1.7 tiny"
    assert deleted.status == 200
    assert bucket.keys() == []


async def test_the_sweep_empties_the_bucket_of_expired_files(key_header, bucket) -> None:
    started = await start_upload({"x-goog-api-key": key_header["x-goog-api-key"]}, {}, size=10)
    await send_chunk(started.headers["x-goog-upload-url"], b"01234", 0)  # abandoned halfway
    await asgi_call(
        "POST",
        "/upload/v1beta/files",
        query="uploadType=media",
        headers={"x-goog-api-key": key_header["x-goog-api-key"], "content-type": "text/plain"},
        body=b"old",
    )
    assert len(bucket.keys()) == 2
    await StoredFile.objects.aupdate(expires_at=timezone.now() - timedelta(seconds=1))

    report = await sweep.sweep()

    assert report.files == 2
    assert bucket.keys() == []
