"""The admin of the member's batches (imported by resources.admin): owner, model, state, the account running it."""

from __future__ import annotations

from django.contrib import admin

from resources.models import Batch, Kind, Placement


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "model", "display_name", "state", "pinned_account", "created_at", "updated_at")
    list_filter = ("state", "model")
    search_fields = ("id", "display_name", "owner__username", "owner__email")
    readonly_fields = (
        "id",
        "owner",
        "key",
        "model",
        "state",
        "pinned_account",
        "created_at",
        "updated_at",
        "last_seen",
    )
    fields = (
        "id",
        "owner",
        "key",
        "display_name",
        "model",
        "state",
        "pinned_account",
        "created_at",
        "updated_at",
        "expires_at",
        "last_seen",
    )
    list_select_related = ("owner",)

    def has_add_permission(self, request) -> bool:
        return False  # batches are made through the API, on an account

    @admin.display(description="pinned account")
    def pinned_account(self, batch: Batch) -> str:
        placement = Placement.objects.filter(kind=Kind.BATCH, resource_id=batch.id).select_related("account").first()
        return f"{placement.account.label} (as {placement.upstream_name})" if placement else "none (account removed)"
