from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.rollup import prune_records


class Command(BaseCommand):
    help = "Delete usage records older than N days (the daily rollup is kept). Run it daily, e.g. from cron."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=getattr(settings, "GEMPROXY_USAGE_RETENTION_DAYS", 90),
            help="Keep this many days of records (default: GEMPROXY_USAGE_RETENTION_DAYS, else 90).",
        )

    def handle(self, *args, days: int, **options) -> None:
        deleted = prune_records(days)
        self.stdout.write(f"Deleted {deleted} usage records older than {days} days.")
