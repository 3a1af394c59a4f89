"""``manage.py sweep_files``: one pass of the Files API's expiry sweep (cron-friendly; safe beside running gateways)."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.core.management.base import BaseCommand

from resources.sweep import sweep


class Command(BaseCommand):
    help = "Delete expired files (bytes, rows, upstream copies), abandoned uploads, expired caches and batches."

    def handle(self, *args, **options) -> None:
        report = async_to_sync(sweep)()
        self.stdout.write(str(report))
