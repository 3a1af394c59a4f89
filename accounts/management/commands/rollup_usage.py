from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand

from accounts.rollup import rebuild_days


class Command(BaseCommand):
    help = (
        "Rebuild the daily usage rollup from the usage records (the batch writer keeps it up to date; "
        "use this to repair it). Default: yesterday and today, UTC."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=2, help="How many days back to rebuild, today included.")

    def handle(self, *args, days: int, **options) -> None:
        last = datetime.now(UTC).date()
        first = last - timedelta(days=max(days, 1) - 1)
        rows = rebuild_days(first, last)
        self.stdout.write(f"Rebuilt {first}..{last}: {rows} rollup rows.")
