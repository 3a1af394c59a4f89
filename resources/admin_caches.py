"""The admin of the members' cached contents: whose, which model, until when, and which accounts hold a copy."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from resources.models import CachedContent, Kind, Placement


@admin.register(CachedContent)
class CachedContentAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "model", "display_name", "created_at", "expires_at", "live", "copies")
    list_filter = ("model",)
    search_fields = ("id", "display_name", "owner__username", "owner__email")
    # All read-only: a changed expiry must reach the upstream copies, which only the API's PATCH does.
    readonly_fields = (
        "id", "owner", "key", "model", "display_name", "created_at", "updated_at", "expires_at",
        "usage_metadata", "create_request", "copies",
    )  # fmt: skip
    list_select_related = ("owner",)
    ordering = ("-created_at",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a cache is made by its member's create call, on an account

    @admin.display(boolean=True, description="live")
    def live(self, cache: CachedContent) -> bool:
        return cache.expires_at > timezone.now()

    @admin.display(description="accounts holding a copy")
    def copies(self, cache: CachedContent) -> str:
        placements = Placement.objects.filter(kind=Kind.CACHED_CONTENT, resource_id=cache.id).select_related("account")
        if not placements:
            return "—"
        return format_html_join(
            mark_safe("<br>"),  # a constant: nothing of the data is in it
            "{} as {} until {}",
            (
                (p.account.label, p.upstream_name, p.expires_at and p.expires_at.strftime("%Y-%m-%d %H:%M UTC"))
                for p in placements
            ),
        )
