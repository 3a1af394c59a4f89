"""Paging a table of millions of rows without counting them all on every page view."""

from __future__ import annotations

from functools import cached_property

from django.core.paginator import Paginator
from django.db import connections

ESTIMATE_ABOVE = 100_000


class EstimatedCountPaginator(Paginator):
    """On PostgreSQL an unfiltered list takes the planner's row estimate once the table is large.

    ``COUNT(*)`` of a big table is a full scan; filtered lists use an index and are counted exactly.
    """

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        connection = connections[queryset.db]
        if connection.vendor == "postgresql" and not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [queryset.model._meta.db_table]
                )
                row = cursor.fetchone()
            if row and row[0] > ESTIMATE_ABOVE:
                return int(row[0])
        return super().count
