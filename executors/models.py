from __future__ import annotations

import hmac
from typing import Literal

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

    def standing(self, account_id: int, token_digest: str) -> Literal["valid", "disabled", "replaced"]:
        """Whether a connection made with the token of this digest may go on serving."""
        row = self.filter(pk=account_id).values_list("enabled", "token_digest").first()
        if row is None or not row[0]:
            return "disabled"  # a deleted account is as good as a disabled one
        return "valid" if hmac.compare_digest(row[1], token_digest) else "replaced"


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
        """Give the account a fresh token, replacing the old one, and return it; it can be shown only now.

        Once saved, the old token opens no new connection, and the executors
        still connected with it are closed within 20 s (executors.consumer).
        """
        issued = secret_tokens.issue(TOKEN_KIND)
        self.token_prefix, self.token_digest = issued.prefix, issued.digest
        return issued.secret
