from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts.models import ProxyKey


class Command(BaseCommand):
    help = "Issue a proxy key for a user (created if missing). The key is the last line of output."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", required=True, help="Username; created if it does not exist.")
        parser.add_argument("--name", default="", help="What the key is for.")

    def handle(self, *args, user: str, name: str, **options) -> None:
        owner, created = get_user_model().objects.get_or_create(username=user)
        if created:
            owner.set_unusable_password()
            owner.save()
        key = ProxyKey(user=owner, name=name)
        secret = key.set_new_secret()
        key.save()
        self.stderr.write(f"Proxy key {key.prefix}… issued for {owner.username}. It is shown only once:")
        self.stdout.write(secret)
