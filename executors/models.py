from __future__ import annotations

from django.db import models
from django.utils import timezone

from gemproxy_site import secret_tokens

TOKEN_KIND = "gpe"


class ExecutorAccountQuerySet(models.QuerySet):
    def matching(self, token: str) -> ExecutorAccount | None:
        """The enabled account whose token this is, compared in constant time."""
        for account in self.filter(enabled=True, token_prefix=secret_tokens.prefix_of(token)):
            if secret_tokens.matches(token, account.token_digest):
                return account
        return None


class ExecutorAccount(models.Model):
    """A Google account that executors (browser tabs, headless agents) call upstream with.

    Several executors may share one account and its token; cool-downs after an
    upstream 429 apply to the account, because Google's limits do.
    """

    label = models.CharField(max_length=200, unique=True, help_text="Names the Google account, e.g. its address.")
    token_prefix = models.CharField(max_length=secret_tokens.PREFIX_LENGTH, db_index=True, editable=False)
    token_digest = models.CharField(max_length=64, editable=False)
    enabled = models.BooleanField(default=True, help_text="Clear to refuse this account's executors.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = ExecutorAccountQuerySet.as_manager()

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return self.label

    def set_new_token(self) -> str:
        """Give the account a fresh token and return it; it can be shown only now."""
        issued = secret_tokens.issue(TOKEN_KIND)
        self.token_prefix, self.token_digest = issued.prefix, issued.digest
        return issued.secret
