"""What the durable usage queue costs a gateway process per call: run by hand, figures in docs/benchmarks.md.

    .venv/bin/python bench/bench_usage_queue.py [--records 5000] [--redis redis://127.0.0.1:6379]

CPU time (user + system of this process) per record, on the two sides:
recording (``usage.arecord``: one XADD, or in embedded mode one journal line,
on the event loop, before the answer completes; against ``usage.record``, an
in-memory put) and writing (the writer thread's drain: XREADGROUP, decode,
insert, XACK + XDEL, or read the journal, decode, insert, unlink; against
writing from memory), into a throwaway SQLite database. CPU time, unlike latency, stays
meaningful on a machine other work keeps busy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def setup(redis_url: str, prefix: str, data: Path) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "gemproxy_site.settings",
            "GEMPROXY_DATA_DIR": str(data),
            "DATABASE_URL": f"sqlite:///{data / 'bench.sqlite3'}",
            "REDIS_URL": redis_url,
            "GEMPROXY_REDIS_PREFIX": prefix,
            "GEMPROXY_USAGE_FLUSH_SECONDS": "0",
            "SECRET_KEY": "bench",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def cpu_ms_per(records: int, started: float) -> float:
    return round((time.process_time() - started) * 1000 / records, 4)


def measure(records: int) -> dict:
    from django.conf import settings

    from accounts import usage
    from accounts.models import UsageRecord
    from accounts.usage_queue import reset_usage_queue

    def events() -> list:
        # Keyed, so each is one row as a real call's is (usage rows link to keys softly: no key needed).
        return [
            usage.UsageEvent(outcome="ok", method="generateContent", model="gemini-2.5-pro", status_code=200, key_id=1)
            for _ in range(records)
        ]

    results = {}
    redis_url = settings.REDIS_URL
    # In memory (no durable queue), the Redis stream (distributed), the journal (embedded: no Redis).
    modes = (("in_memory", False, redis_url), ("durable", True, redis_url), ("journal", True, ""))
    for mode, durable, url in modes:
        settings.GEMPROXY_USAGE_QUEUE, settings.REDIS_URL = durable, url
        reset_usage_queue()
        batch = events()

        async def record_all(batch: list = batch) -> float:
            started = time.process_time()
            for event in batch:
                await usage.arecord(event)
            return started

        started = asyncio.run(record_all())
        recorded = cpu_ms_per(records, started)
        started = time.process_time()
        usage.flush()
        written = cpu_ms_per(records, started)
        results[mode] = {"record_ms": recorded, "write_ms": written}
        UsageRecord.objects.all().delete()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    args = parser.parse_args()
    prefix = f"bench-usage:{uuid.uuid4().hex[:8]}:"
    setup(args.redis, prefix, Path(tempfile.mkdtemp(prefix="gemproxy-bench-usage-")))
    try:
        print(json.dumps({"records": args.records, **measure(args.records)}, indent=2))
    finally:
        import redis

        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)


if __name__ == "__main__":
    main()
