"""The members' page in headless Chromium, served by a real gateway after a real call."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import missing_component
from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, wait_until

CHROMIUM = os.environ.get("GEMPROXY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    if not shutil.which(CHROMIUM):
        missing_component(f"Chromium is not installed at {CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
        yield context.new_page()
        browser.close()


def recorded_calls(deployment: Deployment) -> int:
    with sqlite3.connect(deployment.tmp / "gemproxy.sqlite3") as db:
        return db.execute("SELECT count(*) FROM accounts_usagedaily").fetchone()[0]


@pytest.fixture(scope="module")
def gateway_with_usage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str]]:
    """A gateway where member "hana" has a limited key that has made one call."""
    upstream = ThreadedUpstream()
    deployment = Deployment(Path(tmp_path_factory.mktemp("selfservice")))
    try:
        gateway = deployment.start_gateway()
        deployment.start_agent(gateway, deployment.executor_token(), upstream.url, name="agent")
        key = deployment.manage("create_proxy_key", "--user", "hana", "--name", "notebook", "--rpm", "30")
        deployment.manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User; "
            "u = User.objects.get(username='hana'); u.set_password('hana-pw-1234'); u.save()",
        )
        gateway.wait_for_executors(1)
        answer = httpx.post(
            f"{gateway.url}/v1beta/models/gemini-2.5-flash:generateContent",
            content=json.dumps({"contents": [{"parts": [{"text": "hello from the browser test"}]}]}),
            headers={"x-goog-api-key": key, "content-type": "application/json"},
            timeout=30,
        )
        assert answer.status_code == 200
        wait_until(lambda: recorded_calls(deployment) == 1, what="the call's usage record")
        yield gateway, key
    finally:
        deployment.stop()
        upstream.stop()


def test_a_member_logs_in_and_sees_keys_limits_usage_and_how_to_connect(page: Page, gateway_with_usage) -> None:
    gateway, key = gateway_with_usage
    page.goto(f"{gateway.url}/me/")
    expect(page).to_have_url(f"{gateway.url}/me/login/?next=/me/")
    page.get_by_label("Username").fill("hana")
    page.get_by_label("Password").fill("hana-pw-1234")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Your keys")).to_be_visible()
    keys = page.locator("#keys + table")
    expect(keys).to_contain_text(key[:12])
    expect(keys).not_to_contain_text(key)
    expect(keys).to_contain_text("requests per minute")
    expect(keys).to_contain_text("29 left")

    expect(page.locator('svg[role="img"]')).to_have_count(2)
    expect(page.locator("#recent + table")).to_contain_text("gemini-2.5-flash")

    expect(page.locator("#snippet-curl")).to_be_hidden()
    page.get_by_role("tab", name="curl").click()
    curl = page.locator("#snippet-curl")
    expect(curl).to_be_visible()
    expect(curl).to_contain_text(f"{gateway.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent")
    curl.get_by_role("button", name="copy").click()
    expect(curl.get_by_role("button", name="copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()").startswith(f'curl "{gateway.url}/v1beta/')
