from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import cached_property

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts import rejections
from accounts.policy import KeyPolicy, build_policy, parse_networks
from accounts.storable import storable, validate_lines, validate_one_line
from gemproxy_site import secret_tokens

KEY_KIND = "gpk"
DEFAULT_ROTATION_GRACE_SECONDS = 24 * 3600


def validate_networks(text: str) -> None:
    try:
        parse_networks(text)
    except ValueError as exc:
        raise ValidationError(f"Not a list of CIDRs: {exc}") from exc


def rotation_grace() -> timedelta:
    return timedelta(seconds=getattr(settings, "GEMPROXY_ROTATION_GRACE_SECONDS", DEFAULT_ROTATION_GRACE_SECONDS))


_LIMIT_HELP = "Empty on a key: the member's default. Empty on a default, or 0: no limit."


class LimitFields(models.Model):
    """The limits a key has, or a member's defaults for all their keys."""

    rpm = models.PositiveIntegerField("requests per minute", null=True, blank=True, help_text=_LIMIT_HELP)
    rpd = models.PositiveIntegerField("requests per day", null=True, blank=True, help_text=_LIMIT_HELP)
    tpm = models.PositiveIntegerField(
        "tokens per minute", null=True, blank=True, help_text=_LIMIT_HELP + " Tokens: prompt + candidates + thoughts."
    )
    tpd = models.PositiveIntegerField("tokens per day", null=True, blank=True, help_text=_LIMIT_HELP)
    concurrency = models.PositiveIntegerField("concurrent requests", null=True, blank=True, help_text=_LIMIT_HELP)
    storage_bytes = models.PositiveBigIntegerField(
        "file storage (bytes)",
        null=True,
        blank=True,
        help_text=_LIMIT_HELP + " Bytes of live files uploaded with the key (Files API).",
    )
    file_count = models.PositiveIntegerField(
        "stored files", null=True, blank=True, help_text=_LIMIT_HELP + " Live files uploaded with the key."
    )
    allowed_models = models.TextField(
        blank=True,
        validators=[validate_lines],
        help_text="Glob patterns separated by commas, e.g. gemini-2.5-*, gemini-2.0-flash. "
        "Empty on a key: the member's default. '*' or empty on a default: any model.",
    )
    ip_allowlist = models.TextField(
        "IP allow-list",
        blank=True,
        validators=[validate_lines, validate_networks],
        help_text="CIDRs separated by commas, e.g. 10.0.0.0/8, 2001:db8::/32. "
        "Empty on a key: the member's default. Empty on a default: any address.",
    )

    class Meta:
        abstract = True


class DefaultLimits(LimitFields):
    """A member's limits for each of their keys, unless the key says otherwise."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="default_limits")

    class Meta:
        verbose_name = "default limits"
        verbose_name_plural = "default limits"

    def __str__(self) -> str:
        return f"Default limits of {self.user}"


# What ``secret_tokens.issue`` makes: a kind, "_" and URL-safe base64, with room to spare.
_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,200}")


class ProxyKeyQuerySet(models.QuerySet):
    def usable(self) -> ProxyKeyQuerySet:
        return self.filter(is_active=True, user__is_active=True)

    def authenticate(self, secret: str) -> ProxyKey:
        """The key whose secret this is (current, or previous within its rotation grace).

        Raises a ``Rejection`` that says why otherwise: unknown, revoked, expired,
        or owned by a disabled account. Secrets are compared in constant time.
        """
        if not _SECRET_SHAPE.fullmatch(secret or ""):
            # Not one we could have issued: nothing to look up, and a NUL would fail the query on PostgreSQL.
            raise rejections.invalid_key()
        now = timezone.now()
        prefix = secret_tokens.prefix_of(secret)
        candidates = self.select_related("user", "user__default_limits").filter(
            Q(prefix=prefix) | Q(previous_prefix=prefix, previous_valid_until__gt=now)
        )
        for key in candidates:
            if key.has_secret(secret, now):
                key.check_usable(now)
                return key
        raise rejections.invalid_key()

    def matching(self, secret: str) -> ProxyKey | None:
        """The usable key whose secret this is, or None."""
        try:
            return self.authenticate(secret)
        except rejections.Rejection:
            return None


class ProxyKey(LimitFields):
    """A member's personal key to the gateway; the secret itself is never stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="proxy_keys")
    name = models.CharField(
        max_length=100, blank=True, validators=[validate_one_line], help_text="What the member uses it for."
    )
    prefix = models.CharField(max_length=secret_tokens.PREFIX_LENGTH, db_index=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    is_active = models.BooleanField(default=True, help_text="Clear to revoke the key.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    # After a rotation the old secret keeps working until previous_valid_until.
    previous_prefix = models.CharField(
        max_length=secret_tokens.PREFIX_LENGTH, blank=True, db_index=True, editable=False
    )
    previous_digest = models.CharField(max_length=64, blank=True, editable=False)
    previous_valid_until = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ProxyKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        label = f" {self.name}" if self.name else ""
        return f"{self.prefix}…{label} ({self.user})"

    def set_new_secret(self) -> str:
        """Give the key a fresh secret and return it; it can be shown only now."""
        issued = secret_tokens.issue(KEY_KIND)
        self.prefix, self.digest = issued.prefix, issued.digest
        return issued.secret

    def rotate(self, grace: timedelta | None = None) -> str:
        """A new secret, returned once; the current one keeps working for ``grace``.

        Only the latest previous secret is kept: rotating twice ends the first one's grace.
        """
        grace = rotation_grace() if grace is None else grace
        if grace.total_seconds() > 0:
            self.previous_prefix, self.previous_digest = self.prefix, self.digest
            self.previous_valid_until = timezone.now() + grace
        else:
            self.previous_prefix, self.previous_digest, self.previous_valid_until = "", "", None
        secret = self.set_new_secret()
        self.save(update_fields=["prefix", "digest", "previous_prefix", "previous_digest", "previous_valid_until"])
        return secret

    def revoke(self) -> None:
        self.is_active = False
        self.revoked_at = timezone.now()
        self.save(update_fields=["is_active", "revoked_at"])

    def has_secret(self, secret: str, now: datetime) -> bool:
        if self.prefix == secret_tokens.prefix_of(secret) and secret_tokens.matches(secret, self.digest):
            return True
        return bool(
            self.previous_digest
            and self.previous_valid_until
            and self.previous_valid_until > now
            and secret_tokens.matches(secret, self.previous_digest)
        )

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    def check_usable(self, now: datetime | None = None) -> None:
        """Raise the ``Rejection`` that says why this key may not be used now, if it may not."""
        if not self.is_active:
            raise rejections.revoked_key(self.prefix, self.revoked_at)
        if not self.user.is_active:
            raise rejections.disabled_user(self.prefix)
        if self.is_expired(now):
            raise rejections.expired_key(self.prefix, self.expires_at)

    def check_client_ip(self, client_ip: str) -> None:
        """Raise the ``Rejection`` for a call from outside the key's IP allow-list; every route a key opens asks."""
        if not self.policy.allows_ip(client_ip):
            raise rejections.ip_not_allowed(self.prefix, storable(client_ip, 45))

    @property
    def status(self) -> str:
        if not self.is_active:
            return "revoked"
        if self.is_expired():
            return "expired"
        if self.previous_valid_until and self.previous_valid_until > timezone.now():
            return "rotating"
        return "active"

    @property
    def member_defaults(self) -> DefaultLimits | None:
        try:
            return self.user.default_limits
        except ObjectDoesNotExist:
            return None

    @cached_property
    def policy(self) -> KeyPolicy:
        """Limits, models and networks in force for this key (its own over its member's defaults)."""
        return build_policy(self, self.member_defaults)

    @property
    def masked(self) -> str:
        return f"{self.prefix}{'•' * 8}"


OUTCOME_CHOICES = [
    ("ok", "ok"),
    ("bad_request", "bad request"),
    ("rejected_auth", "rejected: key, model or IP"),
    ("rejected_quota", "rejected: over a limit"),
    ("client_cancelled", "client cancelled"),
    ("upstream_error", "upstream error"),
    ("executor_lost", "executor lost"),
    ("timeout", "timeout"),
    ("unavailable", "no executor available"),
    ("gateway_error", "gateway error"),
]


def _soft_link(model: str) -> models.ForeignKey:
    # Usage outlives keys and members, and the batch writer must never fail on
    # a row deleted in the meantime: no database constraint, nothing cascades.
    return models.ForeignKey(
        model, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )


class UsageRecord(models.Model):
    """One call through the gateway, accepted or not. Written in batches by ``accounts.usage``."""

    created_at = models.DateTimeField(default=timezone.now)
    user = _soft_link(settings.AUTH_USER_MODEL)
    key = _soft_link("accounts.ProxyKey")
    model = models.CharField(max_length=200, blank=True)
    requested_model = models.CharField(
        max_length=200, blank=True, help_text="The model name a foreign client sent (e.g. an alias such as gpt-4o)."
    )
    method = models.CharField(max_length=64, blank=True)
    streamed = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(default=0)
    outcome = models.CharField(max_length=20, choices=OUTCOME_CHOICES)
    prompt_tokens = models.PositiveIntegerField(default=0)
    candidates_tokens = models.PositiveIntegerField(default=0)
    thoughts_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    request_bytes = models.PositiveBigIntegerField(default=0)
    response_bytes = models.PositiveBigIntegerField(default=0)
    executor_account = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    refused_by = models.CharField(
        max_length=200, blank=True, help_text="Executor accounts that answered 429 to this call, in order."
    )
    latency_ms = models.PositiveIntegerField(default=0)
    ttfb_ms = models.PositiveIntegerField(null=True, blank=True)
    client_ip = models.CharField(max_length=45, blank=True)
    calls = models.PositiveIntegerField(
        default=1,
        help_text="Calls this row stands for: 1, except for calls without a valid key, "
        "counted in one row per minute, outcome and method (model and IP are the first one's).",
    )
    # Given when the call is recorded, so that a record delivered twice by the
    # durable queue (a drainer that died after writing, before acknowledging)
    # is written once. Empty for rows that count calls without a valid key.
    record_id = models.CharField(max_length=32, null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["created_at"], name="usage_created"),
            models.Index(fields=["user", "-created_at"], name="usage_user_created"),
            models.Index(fields=["key", "-created_at"], name="usage_key_created"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.model or self.method} {self.outcome}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.candidates_tokens + self.thoughts_tokens


# A rollup row's group, as its unique index (and the writer's ON CONFLICT) spell it. 0 is no primary key.
GROUP_EXPRESSIONS = (
    F("day"),
    Coalesce(F("user"), Value(0)),
    Coalesce(F("key"), Value(0)),
    F("model"),
    F("outcome"),
)


class UsageDaily(models.Model):
    """Usage summed per day, member, key, model and outcome: what the usage pages read.

    The batch writer adds to it as it writes records (one upsert per group,
    ``accounts.rollup``); ``rollup_usage`` rebuilds days from the records. One
    row per group: calls without a key or member share theirs (NULLs count as
    0 in the unique index, as SQL would keep NULLs apart).
    """

    day = models.DateField()
    user = _soft_link(settings.AUTH_USER_MODEL)
    key = _soft_link("accounts.ProxyKey")
    model = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=20, choices=OUTCOME_CHOICES)
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    candidates_tokens = models.PositiveBigIntegerField(default=0)
    thoughts_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    request_bytes = models.PositiveBigIntegerField(default=0)
    response_bytes = models.PositiveBigIntegerField(default=0)
    latency_ms = models.PositiveBigIntegerField(default=0, help_text="Sum over the requests.")

    class Meta:
        verbose_name = "usage dashboard"
        verbose_name_plural = "usage dashboard"
        indexes = [
            models.Index(fields=["day"], name="usage_daily_day"),
            models.Index(fields=["user", "day"], name="usage_daily_user_day"),
        ]
        constraints = [
            models.UniqueConstraint(*GROUP_EXPRESSIONS, name="usage_daily_one_row_per_group"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model} {self.outcome}: {self.requests}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.candidates_tokens + self.thoughts_tokens


class SignInFailures(models.Model):
    """Failed sign-ins of one username from one address, counted by ``accounts.signin``."""

    key = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the username and the address.")
    failures = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True, help_text="The count is forgotten then.")

    class Meta:
        verbose_name = verbose_name_plural = "sign-in failures"

    def __str__(self) -> str:
        return f"{self.failures} failed sign-ins until {self.expires_at:%Y-%m-%d %H:%M:%S}"


INVITATION_KIND = "gpi"
DEFAULT_INVITE_SECONDS = 7 * 24 * 3600


def invite_lifetime() -> timedelta:
    return timedelta(seconds=getattr(settings, "GEMPROXY_INVITE_SECONDS", DEFAULT_INVITE_SECONDS))


class InvitationQuerySet(models.QuerySet):
    def issue(self, user) -> tuple[Invitation, str]:
        """A new one-time sign-in link's record and secret; the member's older links stop working."""
        issued = secret_tokens.issue(INVITATION_KIND)
        now = timezone.now()
        invitation = self.create(
            user=user, prefix=issued.prefix, digest=issued.digest, created_at=now, expires_at=now + invite_lifetime()
        )
        return invitation, issued.secret

    def find(self, secret: str) -> Invitation | None:
        """The invitation whose secret this is, in any state, or None; compared in constant time."""
        if not _SECRET_SHAPE.fullmatch(secret or ""):
            return None  # not one we could have issued: a NUL would fail the query on PostgreSQL
        for invitation in self.select_related("user").filter(prefix=secret_tokens.prefix_of(secret)):
            if secret_tokens.matches(secret, invitation.digest):
                return invitation
        return None

    def usable(self, now: datetime) -> InvitationQuerySet:
        # "Newer invalidates older" is read from the table, not written into the old rows:
        # two admins inviting at once still leave exactly one working link.
        newer = Invitation.objects.filter(user=models.OuterRef("user"), pk__gt=models.OuterRef("pk"))
        return self.filter(used_at=None, expires_at__gt=now, user__is_active=True).exclude(models.Exists(newer))


class Invitation(models.Model):
    """A one-time sign-in link that lets a member choose a password; the secret itself is never stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="invitations")
    prefix = models.CharField(max_length=secret_tokens.PREFIX_LENGTH, db_index=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(editable=False)
    used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"Sign-in link {self.prefix}… for {self.user}"

    def state(self, now: datetime | None = None) -> str:
        """ "usable", "used", "replaced" (a newer link was issued), "expired" or "disabled" (the account)."""
        now = now or timezone.now()
        if self.used_at is not None:
            return "used"
        if Invitation.objects.filter(user_id=self.user_id, pk__gt=self.pk).exists():
            return "replaced"
        if self.expires_at <= now:
            return "expired"
        if not self.user.is_active:
            return "disabled"
        return "usable"

    def claim(self, now: datetime | None = None) -> bool:
        """Mark the link used if it still may be; only one of several racing requests gets True."""
        now = now or timezone.now()
        return bool(Invitation.objects.usable(now).filter(pk=self.pk).update(used_at=now))
