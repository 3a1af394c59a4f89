from __future__ import annotations

import shlex

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware

from accounts.invitations import configured_origin
from accounts.models import ProxyKey


def _expiry(value: str):
    moment = parse_datetime(value.replace("Z", "+00:00"))
    if moment is None:
        raise CommandError(f"--expires: {value!r} is not an ISO 8601 date and time, e.g. 2026-12-31T23:59:00Z")
    return make_aware(moment) if is_naive(moment) else moment


def sign_in_hint(owner) -> str:
    """How the key's owner reaches their page, where their quota and the snippets for their tools are."""
    where = f"{owner.username} signs in at {configured_origin()}/me/"
    if owner.has_usable_password():
        return f"{where} with their password."
    return f"{where} (no password yet: run manage.py invite_member {shlex.quote(owner.username)})"


class Command(BaseCommand):
    help = "Issue a proxy key for a user (created if missing). The key is the last line of output."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", required=True, help="Username; created if it does not exist.")
        parser.add_argument("--name", default="", help="What the key is for.")
        parser.add_argument("--rpm", type=int, help="Requests per minute (0: no limit).")
        parser.add_argument("--rpd", type=int, help="Requests per day (0: no limit).")
        parser.add_argument("--tpm", type=int, help="Tokens per minute (0: no limit).")
        parser.add_argument("--tpd", type=int, help="Tokens per day (0: no limit).")
        parser.add_argument("--concurrency", type=int, help="Concurrent requests (0: no limit).")
        parser.add_argument("--models", default="", help="Allowed model patterns, comma-separated: gemini-2.5-*,...")
        parser.add_argument("--expires", default="", help="Expiry, ISO 8601: 2026-12-31T23:59:00Z.")
        parser.add_argument("--ip", default="", help="IP allow-list, comma-separated CIDRs: 10.0.0.0/8,...")

    def handle(self, *args, user: str, name: str, models: str, expires: str, ip: str, **options) -> None:
        key = ProxyKey(
            name=name,
            allowed_models=models,
            ip_allowlist=ip,
            expires_at=_expiry(expires) if expires else None,
            **{limit: options[limit] for limit in ("rpm", "rpd", "tpm", "tpd", "concurrency")},
        )
        try:
            key.clean_fields(exclude=["user", "prefix", "digest"])
        except ValidationError as exc:
            problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
            raise CommandError(problems) from None
        owner, created = get_user_model().objects.get_or_create(username=user)
        if created:
            owner.set_unusable_password()
            owner.save()
        key.user = owner
        secret = key.set_new_secret()
        key.save()
        self.stderr.write(sign_in_hint(owner))
        self.stderr.write(f"Proxy key {key.prefix}… issued for {owner.username}. It is shown only once:")
        self.stdout.write(secret)
