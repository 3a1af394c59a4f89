"""The admin of the member's files (imported by resources.admin): owner, key, size, state, expiry, copies."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat

from resources import storage
from resources.models import Kind, Placement, StoredFile


@admin.register(StoredFile)
class StoredFileAdmin(admin.ModelAdmin):
    list_display = ("name", "display_name", "owner", "key", "size", "state", "expires_at", "copies")
    list_filter = ("state", "source")
    search_fields = ("id", "display_name", "owner__username", "key__prefix")
    list_select_related = ("owner", "key")
    readonly_fields = (
        "name",
        "owner",
        "key",
        "display_name",
        "mime_type",
        "size",
        "sha256",
        "storage_name",
        "state",
        "source",
        "created_at",
        "updated_at",
        "expires_at",
        "copies",
    )
    exclude = ("size_bytes",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # files arrive through the API, with their bytes

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="size", ordering="size_bytes")
    def size(self, stored: StoredFile) -> str:
        return filesizeformat(stored.size_bytes)

    @admin.display(description="copies on accounts")
    def copies(self, stored: StoredFile) -> str:
        held = Placement.objects.filter(kind=Kind.FILE, resource_id=stored.pk).select_related("account")
        return ", ".join(f"{p.account.label} ({p.upstream_name})" for p in held) or "—"

    # Deleting here is deleting through the API: the bytes go too; the sweep deletes the upstream copies.
    def delete_model(self, request: HttpRequest, obj: StoredFile) -> None:
        super().delete_model(request, obj)
        storage.delete(obj.storage_name)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        names = list(queryset.values_list("storage_name", flat=True))
        super().delete_queryset(request, queryset)
        for name in names:
            storage.delete(name)
