"""The admin's console: members and their default limits, proxy keys, usage records and the usage dashboard."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from accounts import dashboard
from accounts.admin_paging import EstimatedCountPaginator
from accounts.counters import CountersUnavailable, get_counters
from accounts.invitations import invite
from accounts.models import DefaultLimits, ProxyKey, UsageDaily, UsageRecord
from accounts.policy import KeyPolicy
from accounts.reports import Period, top_models
from accounts.selfservice import base_url
from accounts.signin import AdminSignInForm
from accounts.storable import storable

LIMIT_FIELDS = (
    "rpm",
    "rpd",
    "tpm",
    "tpd",
    "concurrency",
    "storage_bytes",
    "file_count",
    "allowed_models",
    "ip_allowlist",
)


def describe_policy(policy: KeyPolicy) -> str:
    limits = policy.limits
    parts = [
        f"{value:,} {unit}"
        for value, unit in (
            (limits.rpm, "req/min"),
            (limits.rpd, "req/day"),
            (limits.tpm, "tok/min"),
            (limits.tpd, "tok/day"),
            (limits.concurrency, "at a time"),
        )
        if value
    ]
    if policy.model_patterns:
        parts.append("models " + ", ".join(policy.model_patterns))
    if policy.networks:
        parts.append("from " + ", ".join(str(net) for net in policy.networks))
    return " · ".join(parts) or "no limits"


def show_secret_once(request: HttpRequest, what: str, secret: str) -> None:
    # Messages live in a signed cookie until the next page shows them, never in the database.
    messages.warning(
        request,
        format_html("{}: <code style='user-select:all'>{}</code> — copy it now, it is shown only once.", what, secret),
    )


class DefaultLimitsInline(admin.StackedInline):
    model = DefaultLimits
    fields = LIMIT_FIELDS
    verbose_name = verbose_name_plural = "default limits for each of the member's keys"


class ProxyKeyInline(admin.TabularInline):
    model = ProxyKey
    fields = ("masked", "name", "status", "expires_at", "last_used_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


# Wrong passwords are counted and, past a limit, refused for a while.
admin.site.login_form = AdminSignInForm

User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class MemberAdmin(UserAdmin):
    inlines = [DefaultLimitsInline, ProxyKeyInline]
    actions = ["make_sign_in_link"]

    @admin.action(description="Send/print a one-time sign-in link (the member chooses a password)")
    def make_sign_in_link(self, request: HttpRequest, queryset: QuerySet) -> None:
        for member in queryset:
            if not member.is_active:
                self.message_user(request, f"No link made for {member}: the account is disabled.", messages.ERROR)
                continue
            link = invite(member, base_url(request))
            until = f"{link.expires_at:%Y-%m-%d %H:%M} UTC"
            show_secret_once(request, f"One-time sign-in link for {member}, valid until {until}", link.url)


@admin.register(ProxyKey)
class ProxyKeyAdmin(admin.ModelAdmin):
    list_display = ("masked", "name", "user", "status", "limits", "expires_at", "last_used_at", "created_at")
    list_filter = ("is_active", "user")
    list_select_related = ("user", "user__default_limits")
    search_fields = ("name", "prefix", "user__username")
    actions = ["revoke", "rotate"]
    readonly_fields = (
        "limits",
        "usage_now",
        "masked",
        "status",
        "created_at",
        "last_used_at",
        "revoked_at",
        "previous_valid_until",
    )

    def get_fieldsets(self, request: HttpRequest, obj: ProxyKey | None = None):
        fieldsets = [
            (None, {"fields": ("user", "name", "expires_at") + (("is_active",) if obj else ())}),
            ("Limits", {"fields": LIMIT_FIELDS, "description": "Empty fields take the member's default limits."}),
        ]
        if obj is not None:
            fieldsets += [
                ("In force now", {"fields": ("limits", "usage_now")}),
                (
                    "History",
                    {
                        "fields": (
                            "masked",
                            "status",
                            "created_at",
                            "last_used_at",
                            "revoked_at",
                            "previous_valid_until",
                        )
                    },
                ),
            ]
        return fieldsets

    @admin.display(description="limits in force")
    def limits(self, key: ProxyKey) -> str:
        return describe_policy(key.policy)

    @admin.display(description="used in the current windows")
    def usage_now(self, key: ProxyKey) -> str:
        try:
            counts = get_counters().counts_now([key.pk])[key.pk]
        except CountersUnavailable:
            return "counters unavailable"
        limits = key.policy.limits
        parts = [
            f"{used:,} / {size:,} {unit}"
            for used, size, unit in (
                (counts.rpm, limits.rpm, "req/min"),
                (counts.rpd, limits.rpd, "req/day"),
                (counts.tpm, limits.tpm, "tok/min"),
                (counts.tpd, limits.tpd, "tok/day"),
                (counts.concurrency, limits.concurrency, "in flight"),
            )
            if size
        ]
        return " · ".join(parts) or "nothing is counted: the key has no limits"

    def save_model(self, request: HttpRequest, obj: ProxyKey, form, change: bool) -> None:
        secret = None if change else obj.set_new_secret()
        if change and "is_active" in form.changed_data:
            obj.revoked_at = None if obj.is_active else timezone.now()
        super().save_model(request, obj, form, change)
        if secret:
            show_secret_once(request, f"New key {obj.prefix}… for {obj.user}", secret)

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ProxyKey]) -> None:
        keys = [key for key in queryset if key.is_active]
        for key in keys:
            key.revoke()
        self.message_user(request, f"Revoked {len(keys)} key(s); gateways stop accepting them within seconds.")

    @admin.action(description="Rotate the selected keys (new secret; the old one works for the grace period)")
    def rotate(self, request: HttpRequest, queryset: QuerySet[ProxyKey]) -> None:
        for key in queryset.filter(is_active=True).select_related("user"):
            secret = key.rotate()
            until = key.previous_valid_until
            old = (
                f"the old secret works until {until:%Y-%m-%d %H:%M} UTC" if until else "the old secret stopped working"
            )
            show_secret_once(request, f"New secret for {key.prefix}… of {key.user} ({old})", secret)


class ModelListFilter(admin.SimpleListFilter):
    """Models seen in the last 90 days, read from the rollup rather than scanning the records."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin):
        return [(row["model"], row["name"]) for row in top_models(Period.last_days(90), limit=50)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[UsageRecord]):
        # Stored models went through ``storable``: so does the one asked for (a NUL would fail on PostgreSQL).
        return queryset.filter(model=storable(self.value(), 200)) if self.value() is not None else queryset


class ReadOnlyAdmin(admin.ModelAdmin):
    """Usage is written by the gateway alone: nobody adds, edits or deletes it by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    # Narrow columns, so that the list fits a 1400 px screen beside the menu and
    # the filters; the record's page shows everything (key, IP, token split).
    list_display = ("when", "user", "call", "mode", "answer", "cost", "executor")
    list_display_links = ("when",)
    list_filter = ("outcome", ModelListFilter, "user", "key", "streamed")
    list_select_related = ("user", "key")
    date_hierarchy = "created_at"
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50

    @admin.display(description="when", ordering="created_at")
    def when(self, record: UsageRecord) -> str:
        local = timezone.localtime(record.created_at)
        return format_html('{}<br><span class="quiet">{}</span>', f"{local:%Y-%m-%d}", f"{local:%H:%M:%S}")

    @admin.display(description="call", ordering="model")
    def call(self, record: UsageRecord) -> str:
        return format_html('{}<br><span class="quiet">{}</span>', record.model or "-", record.method or "-")

    @admin.display(description="mode", ordering="streamed")
    def mode(self, record: UsageRecord) -> str:
        # Words, not Django's boolean icons: a red cross on every unary call read as an error.
        return "stream" if record.streamed else "unary"

    @admin.display(description="outcome", ordering="outcome")
    def answer(self, record: UsageRecord) -> str:
        status = record.status_code or "-"
        return format_html('{}<br><span class="quiet">HTTP {}</span>', record.get_outcome_display(), status)

    @admin.display(description="cost", ordering="latency_ms")
    def cost(self, record: UsageRecord) -> str:
        return format_html(
            '{}<br><span class="quiet">{} ms</span>', f"{record.total_tokens:,}", f"{record.latency_ms:,}"
        )

    @admin.display(description="executor", ordering="executor_account")
    def executor(self, record: UsageRecord) -> str:
        # An account label is often an e-mail address: its domain goes to a second line.
        name, at, domain = record.executor_account.partition("@")
        shown = format_html('{}<br><span class="quiet">@{}</span>', name, domain) if at else record.executor_account
        if record.refused_by:  # the accounts whose 429 moved the call on
            shown = format_html('{}<br><span class="quiet">429 from {}</span>', shown or "-", record.refused_by)
        return shown or "-"


@admin.register(UsageDaily)
class UsageDashboardAdmin(ReadOnlyAdmin):
    """The rollup is not browsed row by row: its page is the usage dashboard."""

    def changelist_view(self, request: HttpRequest, extra_context=None) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            **dashboard.context(request.GET.get("days")),
            "title": "Usage dashboard",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/accounts/usage_dashboard.html", context)
