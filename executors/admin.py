"""Executor accounts in the admin, and the executors connected to the gateway right now."""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from executors.models import ExecutorAccount
from executors.registry import Cooldown

logger = logging.getLogger(__name__)


def live_executors() -> list[dict] | None:
    """The registry's snapshot with ages in seconds, or None when it cannot be read."""
    try:
        from executors.registry import get_registry

        rows = async_to_sync(get_registry().snapshot)()
    except Exception:
        logger.exception("could not read the registry of live executors")
        return None
    now = time.time()
    return [
        {
            **row,
            "heartbeat_age": max(0, round(now - row.get("last_heartbeat", now))),
            "connected_since": datetime.fromtimestamp(row.get("connected_at", now), tz=UTC),
        }
        for row in sorted(rows, key=lambda row: (row.get("account_label", ""), row.get("executor_id", "")))
    ]


def cooldowns() -> list[Cooldown] | None:
    """The cooldowns in force after upstream 429s, or None when the registry cannot be read."""
    try:
        from executors.registry import get_registry

        return async_to_sync(get_registry().cooldowns)()
    except Exception:
        logger.exception("could not read the cooldowns from the registry")
        return None


def cooldown_lines(account_id: int, found: list[Cooldown] | None) -> str:
    """One line per model the account is cooling down for: how long still, and until when (UTC)."""
    if found is None:
        return "?"
    now = time.time()
    mine = [cooldown for cooldown in found if cooldown.account_id == account_id and cooldown.until > now]
    if not mine:
        return "—"
    return format_html_join(
        mark_safe("<br>"),  # a constant: nothing of the data is in it
        "{}: {} s left (until {} UTC)",
        (
            (
                cooldown.model,
                max(1, math.ceil(cooldown.until - now)),
                datetime.fromtimestamp(cooldown.until, tz=UTC).strftime("%H:%M:%S"),
            )
            for cooldown in mine
        ),
    )


def show_token_once(request: HttpRequest, account: ExecutorAccount, token: str) -> None:
    messages.warning(
        request,
        format_html(
            "Executor token for {}: <code style='user-select:all'>{}</code> — copy it now, it is shown only once.",
            account.label,
            token,
        ),
    )


@admin.register(ExecutorAccount)
class ExecutorAccountAdmin(admin.ModelAdmin):
    list_filter = ("enabled",)
    search_fields = ("label",)
    fields = ("label", "enabled", "created_at")
    readonly_fields = ("created_at",)
    actions = ["issue_new_tokens"]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        request.live_executors = live_executors()
        request.cooldowns = cooldowns()
        context = {**(extra_context or {}), "live_executors": request.live_executors}
        return super().changelist_view(request, context)

    def get_list_display(self, request: HttpRequest):
        rows = getattr(request, "live_executors", None)  # put there by changelist_view

        @admin.display(description="executors connected")
        def connected(account: ExecutorAccount) -> str:
            if rows is None:
                return "?"
            return str(sum(1 for row in rows if row.get("account_id") == account.pk))

        found = getattr(request, "cooldowns", None)

        @admin.display(description="cooling down after a 429")
        def cooling_down(account: ExecutorAccount) -> str:
            return cooldown_lines(account.pk, found)

        return ("label", "enabled", connected, cooling_down, "created_at")

    def save_model(self, request: HttpRequest, obj: ExecutorAccount, form, change: bool) -> None:
        token = None if change else obj.set_new_token()
        super().save_model(request, obj, form, change)
        if token:
            show_token_once(request, obj, token)

    @admin.action(
        description="Rotate tokens (the old ones stop working at once; their executors are cut off within 20 s)"
    )
    def issue_new_tokens(self, request: HttpRequest, queryset: QuerySet[ExecutorAccount]) -> None:
        for account in queryset:
            token = account.set_new_token()
            account.save(update_fields=["token_prefix", "token_digest"])
            show_token_once(request, account, token)
