from __future__ import annotations

from django.core.management.base import BaseCommand

from executors.models import ExecutorAccount


class Command(BaseCommand):
    help = (
        "Create an executor account, or rotate an existing one's token: the new token replaces the old one, which "
        "opens no new connection, and executors still connected with it are closed within 20 s. "
        "The token is the last line."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--label", required=True, help="Names the Google account behind the executors.")

    def handle(self, *args, label: str, **options) -> None:
        account, _ = ExecutorAccount.objects.get_or_create(label=label)
        token = account.set_new_token()
        account.save()
        self.stderr.write(
            f"Executor token for {label!r}. It is shown only once. It replaces any earlier one: executors still "
            "connected with that are closed within 20 s:"
        )
        self.stdout.write(token)
