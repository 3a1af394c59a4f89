"""A file stored at the gateway follows the call to whichever account serves it, through that account's executor."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from google.genai import errors, types

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, wait_until

MODEL = "gemini-2.5-flash"
SIZE = 20 * 1024 * 1024
CHUNK = 8 * 1024 * 1024

STORE_FILE = """
import datetime, hashlib, pathlib, sys
from django.contrib.auth import get_user_model
from django.utils import timezone
from accounts.models import ProxyKey
from resources.models import StoredFile
data = pathlib.Path(sys.argv[-1]).read_bytes()
alice = get_user_model().objects.get(username="alice")
stored = StoredFile.objects.create(
    owner=alice, key=ProxyKey.objects.filter(user=alice).first(), mime_type="application/pdf", size_bytes=len(data),
    sha256=hashlib.sha256(data).hexdigest(), storage_name="stored/" + pathlib.Path(sys.argv[-1]).name,
    state="ACTIVE", expires_at=timezone.now() + datetime.timedelta(hours=48))
print(stored.id)
"""


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(
        Path(tmp_path_factory.mktemp("replication")),
        {},
    )
    yield deployment
    deployment.stop()


@pytest.fixture(scope="module")
def member_key(install: Deployment) -> str:
    return install.proxy_key("alice")


def store_file(install: Deployment, name: str, data: bytes) -> str:
    """A file in the gateway's storage, ACTIVE and alice's, as the files surface leaves one; its id."""
    folder = install.tmp / "files" / "stored"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return install.manage("shell", "-c", STORE_FILE.replace("sys.argv[-1]", repr(str(path))))


@pytest.fixture(scope="module")
def stored_file(install: Deployment, member_key: str) -> tuple[str, bytes]:
    data = os.urandom(SIZE)
    return store_file(install, "report.pdf", data), data


@pytest.fixture(scope="module")
def gateway(install: Deployment) -> Gateway:
    return install.start_gateway("gw-replication")


def uploads_by(upstream: ThreadedUpstream, key: str) -> list:
    """The upload starts (not their chunks) made with an account's key."""
    return [r for r in upstream.requests if r.path == "/upload/v1beta/files" and not r.query and r.api_key == key]


def chunks_of(upstream: ThreadedUpstream, start_index: int) -> list:
    return [r for r in upstream.requests[start_index:] if "upload_id=" in r.query]


def ask(gateway: Gateway, key: str, file_id: str, prompt: str) -> types.GenerateContentResponse:
    part = types.Part.from_uri(file_uri=f"files/{file_id}", mime_type="application/pdf")
    return sdk_client(gateway, key, "v1beta").models.generate_content(model=MODEL, contents=[part, prompt])


def test_a_stored_file_is_copied_to_each_account_that_serves_it(
    install: Deployment, gateway: Gateway, member_key: str, stored_file: tuple[str, bytes], upstream: ThreadedUpstream
) -> None:
    file_id, data = stored_file
    agent_a = install.start_agent(gateway, install.executor_token("a@example.com"), upstream.url, name="agent-a")
    gateway.wait_for_executors(1)
    seen = len(upstream.requests)

    first = ask(gateway, member_key, file_id, "what is in it, A?")

    assert len(uploads_by(upstream, "upstream-key-of-agent-a")) == 1
    chunks = chunks_of(upstream, seen)
    assert [len(r.body) for r in chunks] == [CHUNK, CHUNK, SIZE - 2 * CHUNK]
    assert hashlib.sha256(b"".join(r.body for r in chunks)).digest() == hashlib.sha256(data).digest()
    copy_a = next(f for f in upstream.fake.files.files.values() if f.owner == "upstream-key-of-agent-a")
    assert copy_a.sha256_hex == hashlib.sha256(data).hexdigest()
    assert f"[file {copy_a.uri}]" in first.text  # the upstream saw A's copy, not the gateway's name
    generate = upstream.fake.requests_to(":generateContent")[-1]
    assert generate.api_key == "upstream-key-of-agent-a"

    again = ask(gateway, member_key, file_id, "and again, A?")

    assert len(uploads_by(upstream, "upstream-key-of-agent-a")) == 1  # A holds its copy: no second upload
    assert f"[file {copy_a.uri}]" in again.text

    agent_a.stop()
    gateway.wait_for_executors(0)
    install.start_agent(gateway, install.executor_token("b@example.com"), upstream.url, name="agent-b")
    gateway.wait_for_executors(1)

    second = ask(gateway, member_key, file_id, "what is in it, B?")

    assert len(uploads_by(upstream, "upstream-key-of-agent-b")) == 1
    copy_b = next(f for f in upstream.fake.files.files.values() if f.owner == "upstream-key-of-agent-b")
    assert copy_b.sha256_hex == hashlib.sha256(data).hexdigest()
    assert f"[file {copy_b.uri}]" in second.text
    assert upstream.fake.requests_to(":generateContent")[-1].api_key == "upstream-key-of-agent-b"
    wait_until(
        lambda: replications_recorded(install) == [(SIZE, "a@example.com"), (SIZE, "b@example.com")],
        what="a usage record per copy",
    )


def replications_recorded(install: Deployment) -> list[tuple[int, str]]:
    script = (
        "import json; from accounts.models import UsageRecord; "
        "print(json.dumps([(r.request_bytes, r.executor_account) for r in "
        "UsageRecord.objects.filter(method='files.replicate', outcome='ok', user__username='alice').order_by('pk')]))"
    )
    return [tuple(row) for row in json.loads(install.manage("shell", "-c", script))]


def test_a_copy_the_upstream_lost_is_uploaded_again_transparently(
    gateway: Gateway, member_key: str, stored_file: tuple[str, bytes], upstream: ThreadedUpstream
) -> None:
    file_id, _ = stored_file
    ask(gateway, member_key, file_id, "make sure B holds it")
    lost = next(f for f in upstream.fake.files.files.values() if f.owner == "upstream-key-of-agent-b")
    upstream.call(_lose(upstream, lost.id))
    uploads_before = len(uploads_by(upstream, "upstream-key-of-agent-b"))

    answer = ask(gateway, member_key, file_id, "after the loss")

    refused = [r for r in upstream.fake.requests_to(":generateContent") if r.response_status == 403]
    assert refused and lost.uri.encode() in refused[-1].body
    assert len(uploads_by(upstream, "upstream-key-of-agent-b")) == uploads_before + 1
    fresh = next(f for f in upstream.fake.files.files.values() if f.owner == "upstream-key-of-agent-b")
    assert fresh.id != lost.id
    assert f"[file {fresh.uri}]" in answer.text


async def _lose(upstream: ThreadedUpstream, file_id: str) -> None:
    upstream.fake.files.lose(file_id)


def test_concurrent_calls_needing_the_same_copy_upload_it_once(
    install: Deployment, gateway: Gateway, member_key: str, upstream: ThreadedUpstream
) -> None:
    file_id = store_file(install, "shared.pdf", os.urandom(3 * 1024 * 1024))
    uploads_before = len(uploads_by(upstream, "upstream-key-of-agent-b"))
    sdk_client(gateway, member_key, "v1beta")  # made here once: threads making one each would close each other's

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda n: ask(gateway, member_key, file_id, f"at once {n}"), range(4)))

    assert len(uploads_by(upstream, "upstream-key-of-agent-b")) == uploads_before + 1
    copy = next(
        f
        for f in upstream.fake.files.files.values()
        if f.owner == "upstream-key-of-agent-b" and f.size_bytes == 3 * 1024 * 1024
    )
    assert all(f"[file {copy.uri}]" in answer.text for answer in answers)


def test_a_file_of_another_member_is_refused_as_google_refuses_it(
    install: Deployment, gateway: Gateway, stored_file: tuple[str, bytes], upstream: ThreadedUpstream
) -> None:
    file_id, _ = stored_file
    requests_before = len(upstream.requests)

    with pytest.raises(errors.ClientError) as raised:
        ask(gateway, install.proxy_key("mallory"), file_id, "let me see")

    assert (raised.value.code, raised.value.status) == (403, "PERMISSION_DENIED")
    assert len(upstream.requests) == requests_before  # nothing reached the upstream


def test_an_expired_copy_is_uploaded_again_before_use(
    install: Deployment, gateway: Gateway, member_key: str, stored_file: tuple[str, bytes], upstream: ThreadedUpstream
) -> None:
    file_id, _ = stored_file
    ask(gateway, member_key, file_id, "make sure B holds it")
    uploads_before = len(uploads_by(upstream, "upstream-key-of-agent-b"))
    # As if 48 h had passed: the gateway's map says the copy is about to be forgotten upstream.
    install.manage(
        "shell",
        "-c",
        "from django.utils import timezone; from resources.models import Placement; "
        f"Placement.objects.filter(resource_id={file_id!r}).update(expires_at=timezone.now())",
    )
    generates_before = len(upstream.fake.requests_to(":generateContent"))

    answer = ask(gateway, member_key, file_id, "after expiry")

    assert len(uploads_by(upstream, "upstream-key-of-agent-b")) == uploads_before + 1
    assert len(upstream.fake.requests_to(":generateContent")) == generates_before + 1  # no refused attempt first
    fresh = list(upstream.fake.files.files.values())[-1]
    assert f"[file {fresh.uri}]" in answer.text
