"""What accounts add to a call: admit + settle + usage.record, in embedded and in Redis mode.

    .venv/bin/python bench/bench_admission.py [--calls 5000] [--redis redis://127.0.0.1:6379]

For each mode it prints the wall-clock p50 of admit alone (the only part
that delays the answer: settle and record run once it is complete), p50 / p99
of admit + settle + record (sequential calls), and the CPU per call with 50
calls in flight, including the background writer's batched inserts. The key has
every limit set (rpm, rpd, tpm, tpd, concurrency, models, IP allow-list), so
every counter is touched; "no limits" is the floor. Authentication is cached
by the gateway for a few seconds; its uncached database lookup is printed
apart. Runs against a throw-away SQLite database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(data_dir: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "gemproxy_site.settings",
            "GEMPROXY_DATA_DIR": data_dir,
            "DATABASE_URL": f"sqlite:///{data_dir}/bench.sqlite3",
            "REDIS_URL": "",
            "LOG_LEVEL": "WARNING",
        }
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, skip_checks=True)


def make_key(limited: bool):
    from django.contrib.auth import get_user_model

    from accounts.models import ProxyKey

    user, _ = get_user_model().objects.get_or_create(username="bench")
    limits = (
        dict(
            rpm=10**9,
            rpd=10**9,
            tpm=10**12,
            tpd=10**12,
            concurrency=10**6,
            allowed_models="gemini-2.5-*",
            ip_allowlist="10.0.0.0/8",
        )
        if limited
        else {}
    )
    key = ProxyKey(user=user, **limits)
    secret = key.set_new_secret()
    key.save()
    key = ProxyKey.objects.authenticate(secret)
    key.policy  # noqa: B018  (computed once, as the gateway's cached key has it)
    return key, secret


async def one_call(key, body: bytes) -> float:
    """Returns when admission ended: the part of the call that delays the answer."""
    from accounts import usage
    from accounts.limits import admit
    from accounts.usage import UsageEvent

    admission = await admit(key, model="gemini-2.5-flash", client_ip="10.1.2.3", request_body=body)
    admitted = time.perf_counter()
    await admission.settle(321)
    usage.record(
        UsageEvent(
            outcome="ok",
            method="generateContent",
            model="gemini-2.5-flash",
            user_id=key.user_id,
            key_id=key.pk,
            prompt_tokens=100,
            candidates_tokens=200,
            thoughts_tokens=21,
            request_bytes=len(body),
            client_ip="10.1.2.3",
        )
    )
    return admitted


async def measure(key, calls: int) -> dict[str, float]:
    from accounts import usage

    body = b'{"contents": [{"parts": [{"text": "' + b"x" * 400 + b'"}]}]}'
    for _ in range(200):  # warm up: connections, scripts loaded, caches
        await one_call(key, body)
    await asyncio.to_thread(usage.flush)

    samples, admits = [], []
    for _ in range(calls):
        start = time.perf_counter()
        admitted = await one_call(key, body)
        samples.append(time.perf_counter() - start)
        admits.append(admitted - start)
    await asyncio.to_thread(usage.flush)

    in_flight = 50
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for _ in range(calls // in_flight):
        await asyncio.gather(*(one_call(key, body) for _ in range(in_flight)))
    await asyncio.to_thread(usage.flush)
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    done = calls // in_flight * in_flight

    samples.sort()
    return {
        "admit_p50_ms": statistics.median(admits) * 1000,
        "p50_ms": statistics.median(samples) * 1000,
        "p99_ms": samples[int(len(samples) * 0.99)] * 1000,
        "cpu_ms_per_call_50_in_flight": cpu / done * 1000,
        "calls_per_s_50_in_flight": done / wall,
    }


def uncached_auth_ms(secret: str, n: int = 500) -> float:
    from accounts.models import ProxyKey

    samples = []
    for _ in range(n):
        start = time.perf_counter()
        ProxyKey.objects.authenticate(secret)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--redis", default=os.environ.get("GEMPROXY_TEST_REDIS_URL", "redis://127.0.0.1:6379"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        setup_django(data_dir)
        from django.test import override_settings

        from accounts import usage

        unlimited, _ = make_key(limited=False)
        limited, secret = make_key(limited=True)
        embedded = override_settings(GEMPROXY_COUNTERS="accounts.counters.in_process.InProcessCounters")
        redis_mode = override_settings(
            REDIS_URL=args.redis,
            REDIS_PREFIX=f"gemproxy-bench:{uuid.uuid4().hex[:8]}:",
            GEMPROXY_COUNTERS="accounts.counters.in_redis.RedisCounters",
        )
        modes = [("no limits", embedded, unlimited), ("embedded", embedded, limited), ("redis", redis_mode, limited)]

        print(f"{args.calls} calls per mode; admit + settle + usage.record per call")
        print(
            "| mode | admit p50 ms (before the executor) | admit+settle+record p50 ms | p99 ms "
            "| CPU ms/call, 50 in flight (incl. batch writes) | calls/s, 50 in flight |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for name, overrides, key in modes:
            with overrides:
                result = asyncio.run(measure(key, args.calls))
            print(
                f"| {name} | {result['admit_p50_ms']:.3f} | {result['p50_ms']:.3f} | {result['p99_ms']:.3f} "
                f"| {result['cpu_ms_per_call_50_in_flight']:.3f} | {result['calls_per_s_50_in_flight']:.0f} |"
            )
        print(f"\nuncached key lookup (ProxyKey.objects.authenticate, SQLite): p50 {uncached_auth_ms(secret):.3f} ms")
        usage.writer.close()


if __name__ == "__main__":
    main()
