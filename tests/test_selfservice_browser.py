"""The members' pages in headless Chromium, served by a real gateway after real calls."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import missing_component
from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, wait_until

CHROMIUM = os.environ.get("GEMPROXY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
# Where to keep screenshots for a person to look at; by default the test's temporary directory.
SCREENSHOTS = os.environ.get("GEMPROXY_TEST_SCREENSHOTS", "")
WIDTHS = (1280, 1920)
PASSWORD = "hana-long-passphrase-1"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        missing_component(f"Chromium is not installed at {CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile: nobody is signed in."""
    context = browser.new_context(
        permissions=["clipboard-read", "clipboard-write"], viewport={"width": 1280, "height": 900}
    )
    yield context.new_page()
    context.close()


def recorded_calls(deployment: Deployment) -> int:
    with sqlite3.connect(deployment.tmp / "gemproxy.sqlite3") as db:
        return db.execute("SELECT coalesce(sum(requests), 0) FROM accounts_usagedaily").fetchone()[0]


class Install:
    def __init__(self, deployment: Deployment, gateway: Gateway, key: str, remaining_requests: str) -> None:
        self.deployment, self.gateway, self.key = deployment, gateway, key
        self.remaining_requests = remaining_requests  # today's, as the gateway's counters said on the last call

    def invite(self, user: str) -> str:
        return self.deployment.manage("invite_member", user, "--base-url", self.gateway.url)


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    """A gateway where member "hana" (no password yet) has a limited key that has made two calls today."""
    upstream = ThreadedUpstream()
    deployment = Deployment(Path(tmp_path_factory.mktemp("selfservice")))
    try:
        gateway = deployment.start_gateway()
        deployment.start_agent(gateway, deployment.executor_token(), upstream.url, name="agent")
        key = deployment.manage(
            "create_proxy_key",
            "--user",
            "hana",
            "--name",
            "notebook",
            "--rpm",
            "30",
            "--rpd",
            "1000",
            "--tpd",
            "500000",
        )
        gateway.wait_for_executors(1)
        for _ in range(2):
            answer = httpx.post(
                f"{gateway.url}/v1beta/models/gemini-2.5-flash:generateContent",
                content=json.dumps({"contents": [{"parts": [{"text": "hello from the browser test"}]}]}),
                headers={"x-goog-api-key": key, "content-type": "application/json"},
                timeout=30,
            )
            assert answer.status_code == 200
        wait_until(lambda: recorded_calls(deployment) == 2, what="the calls' usage records")
        yield Install(deployment, gateway, key, answer.headers["x-ratelimit-remaining-requests-day"])
    finally:
        deployment.stop()
        upstream.stop()


def sign_in_with_a_link(page: Page, install: Install) -> None:
    page.goto(install.invite("hana"))
    expect(page.get_by_role("heading", name="Hello, hana")).to_be_visible()
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Set password and sign in").click()
    expect(page).to_have_url(f"{install.gateway.url}/me/")


def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    """At each width: nothing wider than the window, and a picture to look at."""
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), f"{name} at {width} px"
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_member_follows_their_sign_in_link_chooses_a_password_and_lands_on_their_page(
    page: Page, install: Install, tmp_path: Path
) -> None:
    link = install.invite("hana")
    page.goto(link)
    expect(page.get_by_role("heading", name="Hello, hana")).to_be_visible()
    screenshot(page, "welcome", tmp_path)
    page.get_by_label("New password").fill("short")
    page.get_by_label("Repeat the password").fill("short")
    page.get_by_role("button", name="Set password and sign in").click()
    expect(page.get_by_text("This password is too short")).to_be_visible()

    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Set password and sign in").click()
    expect(page).to_have_url(f"{install.gateway.url}/me/")
    expect(page.get_by_text("Signed in as hana")).to_be_visible()

    page.goto(link)
    expect(page.get_by_role("heading", name="This sign-in link has already been used")).to_be_visible()
    screenshot(page, "link-used", tmp_path)
    page.get_by_role("link", name="Go to the login page").click()
    expect(page).to_have_url(f"{install.gateway.url}/me/")  # already signed in: the login page sends them on


def test_a_member_logs_in_and_sees_keys_quota_usage_and_how_to_connect(
    page: Page, install: Install, tmp_path: Path
) -> None:
    sign_in_with_a_link(page, install)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{install.gateway.url}/me/login/")
    screenshot(page, "login", tmp_path)
    page.get_by_label("Username").fill("hana")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Your keys")).to_be_visible()
    key_card = page.locator(f'article.key[data-key="{install.key[:12]}"]')
    expect(key_card).to_contain_text("notebook")
    expect(key_card).not_to_contain_text(install.key)
    expect(key_card.locator('[data-limit="rpm"]')).to_contain_text("requests per minute")
    expect(key_card.locator('[data-limit="rpm"]')).to_contain_text("of 30 used")  # its minute may have passed
    per_day = key_card.locator('[data-limit="rpd"]')
    expect(per_day).to_contain_text(f"{install.remaining_requests} left")  # what the gateway's counters said
    expect(per_day).to_contain_text("2 of 1,000 used")
    expect(key_card.locator('[data-limit="tpd"]')).to_contain_text("of 500,000 used")

    expect(page.locator('svg[role="img"]')).to_have_count(2)
    expect(page.locator("#recent ~ .card table")).to_contain_text("gemini-2.5-flash")
    screenshot(page, "me", tmp_path)

    expect(page.locator("#snippet-curl")).to_be_hidden()
    page.get_by_role("tab", name="curl").click()
    curl = page.locator("#snippet-curl")
    expect(curl).to_be_visible()
    expect(curl).to_contain_text(f"{install.gateway.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent")
    curl.get_by_role("button", name="copy").click()
    expect(curl.get_by_role("button", name="copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()").startswith(f'curl "{install.gateway.url}/v1beta/')


def test_an_unknown_link_says_so_in_the_same_look(page: Page, install: Install, tmp_path: Path) -> None:
    response = page.goto(f"{install.gateway.url}/me/welcome/gpi_not-a-real-link/")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="This sign-in link is not valid")).to_be_visible()
    screenshot(page, "link-unknown", tmp_path)


def test_no_sign_in_link_reaches_the_gateways_log(install: Install) -> None:
    log = install.gateway.process.log()
    assert "/me/welcome/REDACTED" in log and "gpi_" not in log
