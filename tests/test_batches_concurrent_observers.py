"""Two calls that see a batch done at the same moment, on PostgreSQL: one responses file, tokens counted once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from executors.models import ExecutorAccount
from resources import batches
from resources.models import Batch, Kind, Placement, StoredFile

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "postgresql"])

DONE = {
    "name": "batches/upstream1",
    "metadata": {
        "@type": batches.BATCH_TYPE,
        "state": "BATCH_STATE_SUCCEEDED",
        "output": {"responsesFile": "files/out1"},
    },
    "done": True,
    "response": {"responsesFile": "files/out1"},
}


def test_concurrent_observers_record_one_generated_file_and_one_first_sight(on_postgresql, member):
    account = ExecutorAccount.objects.create(label="ana@example.com")
    batch = Batch.objects.create(
        owner=member, model="models/gemini-2.5-flash", expires_at=timezone.now() + timedelta(days=2)
    )
    placement = Placement.objects.create(
        kind=Kind.BATCH, resource_id=batch.id, account=account, upstream_name="batches/upstream1"
    )
    start = threading.Barrier(4)
    seen: list[batches.Observed] = []

    def observe() -> None:
        try:
            mine = Batch.objects.get(pk=batch.pk)
            start.wait()
            seen.append(batches.observe(mine, placement, DONE))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=observe) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(seen) == 4
    assert sum(observed.newly_succeeded for observed in seen) == 1
    generated = list(StoredFile.objects.filter(source="GENERATED"))
    assert len(generated) == 1
    assert {observed.operation["metadata"]["output"]["responsesFile"] for observed in seen} == {generated[0].name}
