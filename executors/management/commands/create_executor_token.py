from __future__ import annotations

from django.core.management.base import BaseCommand

from executors.models import ExecutorAccount


class Command(BaseCommand):
    help = "Create an executor account (or give an existing one a new token). The token is the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--label", required=True, help="Names the Google account behind the executors.")

    def handle(self, *args, label: str, **options) -> None:
        account, _ = ExecutorAccount.objects.get_or_create(label=label)
        token = account.set_new_token()
        account.save()
        self.stderr.write(f"Executor token for {label!r}. It is shown only once; old tokens stop working:")
        self.stdout.write(token)
