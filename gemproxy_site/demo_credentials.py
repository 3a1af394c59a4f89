"""The demo's member key and executor token: issued once, then reused while they still work.

Both secrets are stored only as hashes in the database, so the demo keeps them
in a file of its own install (mode 0600), and the key a newcomer pasted into a
tool keeps working after the demo restarts. A file that is missing, unreadable
or holds secrets the database no longer accepts is replaced by fresh ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.contrib.auth import get_user_model

from accounts.models import ProxyKey
from executors.models import ExecutorAccount

KEY_NAME = "demo"


def demo_credentials(path: Path, username: str, executor_label: str) -> tuple[str, str]:
    """The demo member's proxy key and the demo executor account's token."""
    stored = _read(path)
    key = stored.get("proxy_key", "")
    token = stored.get("executor_token", "")
    if not ProxyKey.objects.matching(key):
        key = _issue_key(username)
    if not ExecutorAccount.objects.matching(token):
        token = _issue_token(executor_label)
    if stored != {"proxy_key": key, "executor_token": token}:
        _write(path, {"proxy_key": key, "executor_token": token})
    return key, token


def _issue_key(username: str) -> str:
    member, created = get_user_model().objects.get_or_create(username=username)
    if created:
        member.set_unusable_password()
        member.save()
    # Earlier demo keys whose secret is lost can never be shown again: revoke them.
    for old in ProxyKey.objects.filter(user=member, name=KEY_NAME, is_active=True):
        old.revoke()
    key = ProxyKey(user=member, name=KEY_NAME)
    secret = key.set_new_secret()
    key.save()
    return secret


def _issue_token(label: str) -> str:
    account, _ = ExecutorAccount.objects.get_or_create(label=label)
    account.enabled = True
    token = account.set_new_token()
    account.save()
    return token


def _read(path: Path) -> dict[str, str]:
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(stored, dict):
        return {}
    return {name: value for name, value in stored.items() if isinstance(value, str)}


def _write(path: Path, secrets: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(secrets, file)
