"""The browser executor, in headless Chromium, uploads a copy of a stored file to its account with binary bodies."""

from __future__ import annotations

import hashlib
import os

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream
from tests.e2e.test_browser_executor import chromium_page  # noqa: F401 (a fixture)
from tests.e2e.test_file_replication import ask, install, member_key, store_file  # noqa: F401 (fixtures)

SIZE = 10 * 1024 * 1024 + 12345  # two upload chunks, the second not a multiple of anything


@pytest.fixture(scope="module")
def browser_gateway(install: Deployment, upstream: ThreadedUpstream, chromium_page: Page) -> Gateway:  # noqa: F811
    gateway = install.start_gateway("gw-browser-uploads")
    token = install.executor_token("tab@example.com")
    chromium_page.goto(f"{gateway.url}/executor/#server={gateway.url}&token={token}&upstream={upstream.url}")
    expect(chromium_page.get_by_test_id("connection-status")).to_have_text("connected", timeout=20_000)
    gateway.wait_for_executors(1)
    return gateway


def test_the_page_uploads_a_copy_byte_for_byte_and_the_call_uses_it(
    install: Deployment,  # noqa: F811
    browser_gateway: Gateway,
    member_key: str,  # noqa: F811
    upstream: ThreadedUpstream,
) -> None:
    data = os.urandom(SIZE)
    file_id = store_file(install, "browser.bin", data)
    seen = len(upstream.requests)

    answer = ask(browser_gateway, member_key, file_id, "what did the tab upload?")

    made = [r for r in upstream.requests[seen:] if r.method == "POST"]  # not the CORS preflights
    start = next(r for r in made if r.path == "/upload/v1beta/files" and not r.query)
    chunks = [r for r in made if "upload_id=" in r.query]
    assert "x-goog-api-key" not in start.headers  # the page adds no key: AI Studio authorises its calls
    assert [len(r.body) for r in chunks] == [8 * 1024 * 1024, SIZE - 8 * 1024 * 1024]
    assert hashlib.sha256(b"".join(r.body for r in chunks)).hexdigest() == hashlib.sha256(data).hexdigest()
    copy = next(f for f in upstream.fake.files.files.values() if f.sha256_hex == hashlib.sha256(data).hexdigest())
    assert f"[file {copy.uri}]" in answer.text
