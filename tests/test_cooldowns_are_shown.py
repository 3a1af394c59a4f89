"""Admins see which account cools down for which model, and until when: on /healthz and in the admin."""

from __future__ import annotations

import re
import time
from datetime import datetime

import pytest
from asgiref.sync import async_to_sync

from executors.models import ExecutorAccount
from executors.registry import get_registry

pytestmark = pytest.mark.django_db


@pytest.fixture
def cooling_account() -> ExecutorAccount:
    account = ExecutorAccount.objects.create(label="ana@example.com")
    async_to_sync(get_registry().cool_down)(account.pk, "gemini-2.5-pro", 35.2, account.label)
    return account


def test_healthz_lists_each_cooldown_with_its_account_model_and_end(client, cooling_account) -> None:
    health = client.get("/healthz").json()

    [row] = health["cooldowns"]
    assert (row["account"], row["model"]) == ("ana@example.com", "gemini-2.5-pro")
    assert row["seconds_left"] in (35, 36)  # rounded up
    until = datetime.fromisoformat(row["until"]).timestamp()
    assert until == pytest.approx(time.time() + 35.2, abs=2)


def test_healthz_has_no_cooldowns_once_they_are_over(client) -> None:
    async_to_sync(get_registry().cool_down)(1, "gemini-2.5-pro", 0.01, "ana@example.com")
    time.sleep(0.05)

    assert client.get("/healthz").json()["cooldowns"] == []


def test_healthz_never_shows_an_executor_token(client, cooling_account) -> None:
    token = cooling_account.set_new_token()
    cooling_account.save()

    body = client.get("/healthz").content.decode()

    assert token not in body and cooling_account.token_prefix not in body


def test_the_executor_accounts_page_shows_what_each_account_cools_down_for(client, admin_user, cooling_account):
    ExecutorAccount.objects.create(label="bob@example.com")
    client.force_login(admin_user)

    page = client.get("/admin/executors/executoraccount/").content.decode()

    assert "Cooling down after a 429" in page
    assert re.search(r"gemini-2\.5-pro: 3[56] s left \(until \d\d:\d\d:\d\d UTC\)", page)
    assert page.count(" s left (until ") == 1  # bob's account is not cooling down


def test_healthz_is_a_liveness_check_answering_200_without_executors(client) -> None:
    # Restarting a gateway because its executors are away would only drop its open streams.
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["executors"] == 0
