"""Executor accounts in the admin, and the executors connected right now."""

from __future__ import annotations

import re
import time

import pytest
from asgiref.sync import async_to_sync

from executors.models import ExecutorAccount
from executors.registry import ExecutorInfo, get_registry

pytestmark = pytest.mark.django_db

TOKEN = re.compile(r"gpe_[A-Za-z0-9_-]{20,}")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def connected_executor():
    account = ExecutorAccount.objects.create(label="ana@example.com")
    info = ExecutorInfo(
        connection_id="conn-1",
        executor_id="tab-7f3a",
        channel_name="specific.test!1",
        account_id=account.pk,
        account_label=account.label,
        software="gemproxy-executor-web/1.0",
        max_concurrency=4,
        connected_at=time.time() - 300,
    )
    registry = get_registry()
    async_to_sync(registry.register)(info, time.time() + 60)
    yield account
    async_to_sync(registry.unregister)("conn-1")


def test_the_account_list_shows_the_executors_connected_right_now(admin_client, connected_executor):
    page = admin_client.get("/admin/executors/executoraccount/").content.decode()
    assert "Executors connected right now" in page
    assert "tab-7f3a" in page and "gemproxy-executor-web/1.0" in page and "0 / 4" in page
    assert "5\xa0minutes" in page  # connected for


def test_the_account_list_says_so_when_no_executor_is_connected(admin_client):
    ExecutorAccount.objects.create(label="idle@example.com")
    assert "No executor is connected" in admin_client.get("/admin/executors/executoraccount/").content.decode()


def test_the_account_list_still_renders_when_the_registry_is_unavailable(admin_client, monkeypatch):
    def broken():
        raise ConnectionError("redis down")

    monkeypatch.setattr("executors.registry.get_registry", broken)
    page = admin_client.get("/admin/executors/executoraccount/").content.decode()
    assert "Registry unavailable" in page


def test_creating_an_account_shows_its_token_once(admin_client):
    response = admin_client.post(
        "/admin/executors/executoraccount/add/", {"label": "new@example.com", "enabled": "on"}, follow=True
    )
    [token] = TOKEN.findall(response.content.decode())
    assert ExecutorAccount.objects.matching(token).label == "new@example.com"


def test_issuing_a_new_token_stops_the_old_one(admin_client):
    account = ExecutorAccount(label="rotate@example.com")
    old = account.set_new_token()
    account.save()
    response = admin_client.post(
        "/admin/executors/executoraccount/",
        {"action": "issue_new_tokens", "_selected_action": [account.pk]},
        follow=True,
    )
    [new] = TOKEN.findall(response.content.decode())
    assert ExecutorAccount.objects.matching(old) is None
    assert ExecutorAccount.objects.matching(new).pk == account.pk
