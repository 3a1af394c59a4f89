from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from gemproxy_site import secret_tokens

KEY_KIND = "gpk"


class ProxyKeyQuerySet(models.QuerySet):
    def usable(self) -> ProxyKeyQuerySet:
        return self.filter(is_active=True, user__is_active=True)

    def matching(self, secret: str) -> ProxyKey | None:
        """The active key whose secret this is, compared in constant time."""
        candidates = self.usable().select_related("user").filter(prefix=secret_tokens.prefix_of(secret))
        for key in candidates:
            if secret_tokens.matches(secret, key.digest):
                return key
        return None


class ProxyKey(models.Model):
    """A member's personal key to the gateway; the secret itself is never stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="proxy_keys")
    name = models.CharField(max_length=100, blank=True, help_text="What the member uses it for.")
    prefix = models.CharField(max_length=secret_tokens.PREFIX_LENGTH, db_index=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    is_active = models.BooleanField(default=True, help_text="Clear to revoke the key.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ProxyKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    def set_new_secret(self) -> str:
        """Give the key a fresh secret and return it; it can be shown only now."""
        issued = secret_tokens.issue(KEY_KIND)
        self.prefix, self.digest = issued.prefix, issued.digest
        return issued.secret

    @property
    def masked(self) -> str:
        return f"{self.prefix}{'•' * 8}"
