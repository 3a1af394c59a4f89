"""A gateway process SIGKILLed under load loses not one usage record (issue 11, fault 3).

Two Daphne processes on Redis and a fresh PostgreSQL database, each with its
own executor; clients call both. Process A writes its usage only every 3 s,
so that a process keeping records in memory would lose seconds of them: seen
before the fix, 30 records for 31 calls with the default 1 s. Now each record
is in a Redis stream before its answer completes, and B writes A's. Embedded,
each record is in the data directory's journal, and the next process started
there writes it.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import httpx2 as httpx
import psycopg

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, wait_until

CLIENTS_PER_GATEWAY = 4
# A is killed once it answered this many calls, before its writer's 3 s batch is due.
ANSWERED_BY_A_BEFORE_KILL = 10
LOAD_SECONDS_AFTER_KILL = 2.0


def keyed_rows(database_url: str) -> int:
    with psycopg.connect(database_url) as db:
        row = db.execute("SELECT count(*) FROM accounts_usagerecord WHERE key_id IS NOT NULL").fetchone()
    assert row is not None
    return int(row[0])


def test_usage_rows_equal_answered_calls_after_a_gateway_is_sigkilled_mid_load(
    distributed: Deployment, postgres_database_url: str, upstream: ThreadedUpstream
) -> None:
    key = distributed.proxy_key("sigkill")
    gateway_a = distributed.start_gateway_with_agent(
        "killed-a",
        distributed.executor_token("a@x.org"),
        upstream.url,
        GEMPROXY_USAGE_FLUSH_SECONDS="3",
        GEMPROXY_USAGE_CLAIM_SECONDS="3",
    )
    gateway_b = distributed.start_gateway_with_agent(
        "survivor-b", distributed.executor_token("b@x.org"), upstream.url, GEMPROXY_USAGE_CLAIM_SECONDS="3"
    )
    before = keyed_rows(postgres_database_url)
    answered = {"a": 0, "b": 0}
    failed = {"a": 0, "b": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def load(name: str, gateway: Gateway, client_number: int) -> None:
        client = sdk_client(gateway, key)
        n = 0
        while not stop.is_set():
            n += 1
            try:
                client.models.generate_content(model="gemini-2.5-flash", contents=f"load {name}{client_number}-{n}")
            except Exception:  # the SDK raises several kinds once A is gone
                with lock:
                    failed[name] += 1
                if name == "a" and gateway_a.process.popen.poll() is not None:
                    return
                continue
            with lock:
                answered[name] += 1

    threads = [
        threading.Thread(target=load, args=(name, gateway, n))
        for name, gateway in (("a", gateway_a), ("b", gateway_b))
        for n in range(CLIENTS_PER_GATEWAY)
    ]
    for thread in threads:
        thread.start()
    wait_until(
        lambda: answered["a"] >= ANSWERED_BY_A_BEFORE_KILL, 30, f"{ANSWERED_BY_A_BEFORE_KILL} calls answered by A"
    )
    gateway_a.process.kill()
    time.sleep(LOAD_SECONDS_AFTER_KILL)
    stop.set()
    for thread in threads:
        thread.join(30)

    total_answered = answered["a"] + answered["b"]
    assert answered["a"] >= ANSWERED_BY_A_BEFORE_KILL and answered["b"] > 0, answered
    wait_until(
        lambda: keyed_rows(postgres_database_url) - before >= total_answered,
        30,
        f"{total_answered} usage rows (answered {answered}, failed {failed})",
    )
    time.sleep(1.0)  # nothing is written twice either, nor late
    rows = keyed_rows(postgres_database_url) - before
    # A call cut off by the kill may have been recorded before its answer was complete.
    assert total_answered <= rows <= total_answered + failed["a"], (rows, answered, failed)


def test_embedded_usage_rows_equal_answered_calls_after_the_gateway_is_sigkilled(
    tmp_path, upstream: ThreadedUpstream
) -> None:
    """One process, SQLite: each record is in the journal before its answer completes; the next process writes it."""
    install = Deployment(tmp_path, {"GEMPROXY_USAGE_FLUSH_SECONDS": "3"})
    try:
        key = install.proxy_key("solo")
        gateway = install.start_gateway_with_agent("solo", install.executor_token("solo@x.org"), upstream.url)
        counts = {"answered": 0, "failed": 0}
        lock = threading.Lock()

        def load(client_number: int) -> None:
            client = sdk_client(gateway, key)
            n = 0
            while gateway.process.popen.poll() is None:
                n += 1
                try:
                    client.models.generate_content(model="gemini-2.5-flash", contents=f"solo {client_number}-{n}")
                except Exception:  # the SDK raises several kinds once the gateway is gone
                    with lock:
                        counts["failed"] += 1
                    continue
                with lock:
                    counts["answered"] += 1

        threads = [threading.Thread(target=load, args=(n,)) for n in range(CLIENTS_PER_GATEWAY)]
        for thread in threads:
            thread.start()
        wait_until(lambda: counts["answered"] >= ANSWERED_BY_A_BEFORE_KILL, 30, "calls answered")
        gateway.process.kill()
        for thread in threads:
            thread.join(30)
        assert sqlite_keyed_rows(tmp_path) < counts["answered"]  # the 3 s batch was not due: the rest is in the journal

        restarted = install.start_gateway("restarted")
        # Its writer starts with its first record (this unknown key's), and writes the dead one's journal first.
        assert httpx.get(f"{restarted.url}/v1beta/models", headers={"x-goog-api-key": "gpk_unknown"}).status_code == 400
        wait_until(lambda: sqlite_keyed_rows(tmp_path) >= counts["answered"], 30, f"{counts} usage rows")
        time.sleep(1.0)  # nothing is written twice either, nor late
        rows = sqlite_keyed_rows(tmp_path)
    finally:
        install.stop()

    assert counts["answered"] <= rows <= counts["answered"] + counts["failed"], (rows, counts)
    assert list((tmp_path / "usage-journal").glob("*.jsonl")) == []  # a clean stop leaves no journal


def sqlite_keyed_rows(data_dir) -> int:
    with sqlite3.connect(data_dir / "gemproxy.sqlite3") as db:
        (rows,) = db.execute("SELECT count(*) FROM accounts_usagerecord WHERE key_id IS NOT NULL").fetchone()
    return int(rows)
