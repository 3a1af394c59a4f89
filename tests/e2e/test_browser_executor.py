"""The browser executor, in headless Chromium, serving real SDK calls through a real gateway."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator

import httpx2 as httpx
import pytest
from google.genai import types
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import missing_component
from tests.e2e.conftest import sdk_client
from tests.e2e.harness import ROOT, Deployment, Gateway, ThreadedUpstream

CHROMIUM = os.environ.get("GEMPROXY_TEST_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google's
# hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium_page() -> Iterator[Page]:
    if not shutil.which(CHROMIUM):
        missing_component(f"Chromium is not installed at {CHROMIUM} (scripts/setup --dev installs it)")
    if not (ROOT / "frontend" / "dist" / "index.html").exists():
        missing_component("frontend/dist is not built (scripts/setup builds it when Node.js is present)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        yield page
        browser.close()


@pytest.fixture(scope="module")
def browser_gateway(
    deployment: Deployment, executor_token: str, upstream: ThreadedUpstream, chromium_page: Page
) -> Gateway:
    gateway = deployment.start_gateway("gw-browser")
    fragment = f"#server={gateway.url}&token={executor_token}&upstream={upstream.url}"
    chromium_page.goto(f"{gateway.url}/executor/{fragment}")
    expect(chromium_page.get_by_test_id("connection-status")).to_have_text("connected", timeout=20_000)
    gateway.wait_for_executors(1)
    return gateway


def test_the_page_connects_and_shows_its_account(browser_gateway: Gateway, chromium_page: Page) -> None:
    expect(chromium_page.get_by_test_id("account-label")).to_contain_text("ana@example.com")


def test_an_sdk_call_is_performed_by_the_page(
    browser_gateway: Gateway, chromium_page: Page, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    response = sdk_client(browser_gateway, proxy_key).models.generate_content(
        model="gemini-2.5-flash", contents="from the browser"
    )

    assert response.text.startswith("echo: from the browser")
    request = next(r for r in reversed(upstream.requests) if b"from the browser" in r.body)
    assert "x-goog-api-key" not in request.headers, "the page adds no key: AI Studio authorises its calls"
    expect(chromium_page.get_by_test_id("task-log")).to_contain_text("gemini-2.5-flash")


def test_a_stream_through_the_page_arrives_chunk_by_chunk(
    browser_gateway: Gateway, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    stream = iter(
        sdk_client(browser_gateway, proxy_key).models.generate_content_stream(
            model="gemini-2.5-flash", contents="browser stream #hold #chunks=3"
        )
    )

    assert next(stream).text  # the upstream holds the rest until released
    upstream.release()
    assert len(list(stream)) == 2


def test_a_client_that_leaves_makes_the_page_abort_its_fetch(
    browser_gateway: Gateway, chromium_page: Page, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    upstream.fake.stream_aborted.clear()
    cancelled = int(chromium_page.get_by_test_id("cancelled-count").inner_text() or 0)

    with (
        httpx.Client(base_url=browser_gateway.url, timeout=30) as http,
        http.stream(
            "POST",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            json={"contents": [{"parts": [{"text": "abandoned in the browser #hold"}]}]},
            headers={"x-goog-api-key": proxy_key},
        ) as response,
    ):
        assert next(response.iter_raw()).startswith(b"data: ")

    upstream.wait_for("stream_aborted", timeout=5)
    expect(chromium_page.get_by_test_id("cancelled-count")).to_have_text(str(cancelled + 1))
    upstream.release()


def test_a_five_mebibyte_image_round_trips_intact(
    browser_gateway: Gateway, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    image = os.urandom(5 * 1024 * 1024)

    response = sdk_client(browser_gateway, proxy_key).models.generate_content(
        model="gemini-2.5-flash",
        contents=[types.Part.from_bytes(data=image, mime_type="image/png"), "describe this image"],
    )

    assert f"{len(image)} bytes sha256={hashlib.sha256(image).hexdigest()}" in response.text


def test_a_fresh_page_from_the_gateway_has_the_gateway_filled_in(browser_gateway: Gateway, chromium_page: Page) -> None:
    browser = chromium_page.context.browser
    assert browser is not None
    # A context of its own: nothing remembered from the fragment the other page was given.
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{browser_gateway.url}/executor/")
        expect(page.get_by_test_id("server-input")).to_have_value(browser_gateway.url)
        expect(page.get_by_test_id("server-input")).to_be_editable()
    finally:
        context.close()


def test_the_self_test_reaches_the_upstream_from_the_page(
    browser_gateway: Gateway, chromium_page: Page, upstream: ThreadedUpstream
) -> None:
    chromium_page.get_by_test_id("self-test-button").click()
    expect(chromium_page.get_by_test_id("self-test-result")).to_have_attribute("data-state", "ok")
    expect(chromium_page.get_by_test_id("self-test-result")).to_have_attribute("data-via", "models.list")


def test_the_page_reconnects_by_itself_after_the_gateway_restarts(
    deployment: Deployment, browser_gateway: Gateway, chromium_page: Page, proxy_key: str
) -> None:
    browser_gateway.process.stop()
    expect(chromium_page.get_by_test_id("connection-status")).not_to_have_text("connected", timeout=20_000)

    restarted = deployment.start_gateway("gw-browser-restarted", port=browser_gateway.port)
    expect(chromium_page.get_by_test_id("connection-status")).to_have_text("connected", timeout=60_000)
    restarted.wait_for_executors(1)

    response = sdk_client(restarted, proxy_key).models.generate_content(
        model="gemini-2.5-flash", contents="after the restart"
    )
    assert response.text.startswith("echo: after the restart")
