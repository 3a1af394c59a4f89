"""The admin and the members' pages in headless Chromium, as an admin sees them on a laptop or a wide screen."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import missing_component
from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, wait_until

CHROMIUM = os.environ.get("GEMPROXY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ADMIN, PASSWORD = "boss", "a-long-admin-password-1"
WIDTHS = (1280, 1920)


@pytest.fixture(scope="module")
def site(deployment: Deployment, executor_token: str, upstream: ThreadedUpstream) -> Gateway:
    """A gateway with a live executor, a superuser, and usage of both kinds (unary, streamed)."""
    deployment.manage("createsuperuser", "--noinput", "--username", ADMIN, "--email", "boss@example.com")
    gateway = deployment.start_gateway_with_agent("gw-admin", executor_token, upstream.url)
    client = sdk_client(gateway, deployment.proxy_key("alice"))
    client.models.generate_content(model="gemini-2.5-flash", contents="a unary call")
    for _ in client.models.generate_content_stream(model="gemini-2.5-flash", contents="a stream #chunks=2"):
        pass
    return gateway


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    install = Deployment(Path(tmp_path_factory.mktemp("admin-pages")), {"DJANGO_SUPERUSER_PASSWORD": PASSWORD})
    yield install
    install.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        missing_component(f"Chromium is not installed at {CHROMIUM} (scripts/setup --dev installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def admin_page(browser: Browser, site: Gateway, width: int) -> Page:
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.goto(f"{site.url}/admin/login/")
    page.fill("#id_username", ADMIN)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{site.url}/admin/")
    return page


def usage_rows_arrived(page: Page, site: Gateway) -> bool:
    page.goto(f"{site.url}/admin/accounts/usagerecord/")
    return page.locator("#result_list tbody tr").count() >= 2


@pytest.mark.parametrize("width", WIDTHS)
def test_the_add_button_does_not_cover_the_live_executors(browser: Browser, site: Gateway, width: int) -> None:
    page = admin_page(browser, site, width)
    page.goto(f"{site.url}/admin/executors/executoraccount/")

    button = page.locator(".object-tools").bounding_box()
    table = page.locator("#live-executors").bounding_box()
    assert button and table
    assert page.locator("#live-executors tbody tr").count() == 1
    assert button["y"] + button["height"] <= table["y"], f"the add button {button} overlaps the table {table}"


@pytest.mark.parametrize("width", (1400, *WIDTHS))
def test_the_usage_records_fit_the_page(browser: Browser, site: Gateway, width: int) -> None:
    page = admin_page(browser, site, width)
    wait_until(lambda: usage_rows_arrived(page, site), what="the usage records to be written")

    table = page.locator("#result_list")
    box = table.bounding_box()
    assert box
    assert box["x"] + box["width"] <= width, f"the table ends at {box['x'] + box['width']} px"
    # Inside the scrolling container the table is no wider than what is shown.
    assert page.evaluate(
        "() => { const c = document.querySelector('.results'); return c.scrollWidth <= c.clientWidth; }"
    )
    for header in ("outcome", "cost", "executor"):
        assert page.locator("#result_list thead th", has_text=header).is_visible()


def test_unary_calls_are_not_marked_with_a_red_cross(browser: Browser, site: Gateway) -> None:
    page = admin_page(browser, site, 1920)
    wait_until(lambda: usage_rows_arrived(page, site), what="the usage records to be written")

    assert page.locator("#result_list img[alt='False']").count() == 0
    modes = page.locator("#result_list td.field-mode").all_inner_texts()
    assert sorted(set(modes)) == ["stream", "unary"]


def test_the_admin_names_gemproxy_not_django(browser: Browser, site: Gateway) -> None:
    page = admin_page(browser, site, 1280)

    assert page.locator("#site-name").inner_text() == "gemproxy administration"
    assert "Django" not in page.title()


def test_a_favicon_is_served_and_linked_from_every_kind_of_page(browser: Browser, site: Gateway) -> None:
    icon = httpx.get(f"{site.url}/favicon.ico", timeout=10)
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg")

    page = admin_page(browser, site, 1280)
    for path in ("/admin/", "/me/login/", "/executor/"):
        page.goto(site.url + path)
        href = page.locator("link[rel=icon]").first.get_attribute("href")
        assert href, f"{path} links no icon"
        if not href.startswith("data:"):
            assert httpx.get(site.url + href, timeout=10).status_code == 200


def test_a_429_status_line_reads_too_many_requests(deployment: Deployment, site: Gateway) -> None:
    key = deployment.manage("create_proxy_key", "--user", "carol", "--rpm", "1")
    body = b'{"contents":[{"parts":[{"text":"hi"}]}]}'
    request = (
        b"POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"x-goog-api-key: " + key.encode() + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )
    lines = []
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", site.port), timeout=10) as sock:
            sock.sendall(request)
            answer = b""
            while b"\r\n" not in answer and (chunk := sock.recv(4096)):
                answer += chunk
        lines.append(answer.split(b"\r\n", 1)[0])
        time.sleep(0.2)

    assert lines == [b"HTTP/1.1 200 OK", b"HTTP/1.1 429 Too Many Requests"]
