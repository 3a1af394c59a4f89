"""A soak test of the distributed deployment with faults: run by hand, figures go into docs/benchmarks.md.

    .venv/bin/python bench/soak.py [--streams 1000] [--minutes 5] [--gateways 2]

Starts, on this machine: a redis-server of its own on a free port (so it can
be killed), a fresh PostgreSQL database (``GEMPROXY_TEST_POSTGRES_URL``, by
default postgresql://postgres@127.0.0.1:5432/test), the stand-in upstream, N
Daphne gateway processes with one headless executor each, and ``--streams``
clients (aiohttp, in this process) that stream generateContent calls back to
back, spread over the gateways. During the run, at a quarter, half and three
quarters of it:

1. the last gateway process is SIGKILLed and started again on its port;
2. the first gateway's executor is SIGKILLed and a new one started;
3. Redis is SIGKILLed and started again on its port.

It reports calls, errors by kind, usage rows against calls (a row for every
call that got an answer, none lost), stuck slots (executors' busy counts
once every call has ended) and each process's RSS over time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import throwaway_postgres_database  # noqa: E402
from tests.e2e.harness import PYTHON, Deployment, Gateway, Process, free_port, wait_until  # noqa: E402
from tests.private_redis import PrivateRedis  # noqa: E402

STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
CALL_TIMEOUT_SECONDS = 120.0


class Tally:
    def __init__(self) -> None:
        self.calls = 0
        self.answered = 0  # a complete 200 stream
        self.responded = 0  # any complete HTTP answer, error or not: each must have a usage row
        self.errors: Counter[str] = Counter()

    def error(self, kind: str) -> None:
        self.errors[kind] += 1


async def one_stream(session: aiohttp.ClientSession, url: str, text: str, tally: Tally) -> None:
    tally.calls += 1
    body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    try:
        async with session.post(url + STREAM, json=body) as response:
            raw = await response.read()
    except aiohttp.ClientConnectorError:
        tally.error("connect refused (gateway down)")
        return
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
        tally.error("cut mid-answer (gateway killed)")
        return
    except TimeoutError:
        tally.error("client timeout (stuck)")
        return
    tally.responded += 1
    if response.status != 200:
        tally.error(f"{response.status} {_status_of(raw)}")
        return
    events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith(b"data: ")]
    if any("error" in event for event in events):
        error = next(event["error"] for event in events if "error" in event)
        tally.error(f"in-stream {error.get('code')} {error.get('status')}")
        return
    if not events or not events[-1].get("candidates", [{}])[0].get("finishReason"):
        tally.error("200 without an end")
        return
    tally.answered += 1


def _status_of(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"]["status"])
    except (ValueError, KeyError, TypeError):
        return "(not Google's shape)"


async def client(number: int, urls: list[str], key: str, stop: asyncio.Event, tally: Tally) -> None:
    timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(limit=1, force_close=False)
    async with aiohttp.ClientSession(headers={"x-goog-api-key": key}, timeout=timeout, connector=connector) as session:
        n = 0
        while not stop.is_set():
            n += 1
            failed_before = sum(tally.errors.values())
            await one_stream(session, urls[(number + n) % len(urls)], f"soak {number}-{n} #chunks=4", tally)
            if sum(tally.errors.values()) > failed_before:
                await asyncio.sleep(0.2)  # as a client would back off


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PersistentRedis(PrivateRedis):
    """The private redis-server with an append-only file, as docs/deployment.md asks of production.

    A SIGKILLed redis-server loses nothing it acknowledged (its AOF writes are in
    the kernel); without it a restart would take the undrained usage records along.
    """

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        data = self._log_path.parent / f"redis-{self.port}"
        data.mkdir(exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "yes", "--dir", str(data)]
        with self._log_path.open("ab") as log:
            self._popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.answers, 10, f"redis-server on {self.port}")


class Soak:
    def __init__(self, args: argparse.Namespace, tmp: Path, database_url: str) -> None:
        self.args = args
        self.tmp = tmp
        self.redis = PersistentRedis(tmp)
        self.redis.start()
        self.deployment = Deployment(
            tmp,
            {
                "REDIS_URL": self.redis.url,
                "GEMPROXY_REDIS_PREFIX": f"soak:{uuid.uuid4().hex[:6]}:",
                "DATABASE_URL": database_url,
                "LOG_LEVEL": "WARNING",
                "GEMPROXY_DISPATCH_WAIT": "10",
                # Production's heartbeat; the harness's quick one is for tests.
                "GEMPROXY_HEARTBEAT_INTERVAL": "15",
                "GEMPROXY_HEARTBEAT_TIMEOUT": "60",
            },
        )
        self.upstream_port = free_port()
        upstream = Process(
            "standin", [PYTHON, "-m", "executors.standin", "--port", str(self.upstream_port)], self.deployment.env, tmp
        )
        self.deployment.processes.append(upstream)
        self.upstream = f"http://127.0.0.1:{self.upstream_port}"
        self.token = self.deployment.executor_token("soak@example.com")
        self.key = self.deployment.proxy_key("soak")
        self.gateways: list[Gateway] = []
        self.agents: list[Process] = []
        self.rss: dict[str, list[tuple[float, int | None]]] = {}
        self.events: list[tuple[float, str]] = []
        self.started = time.monotonic()

    def start(self) -> None:
        for n in range(self.args.gateways):
            self.gateways.append(self.deployment.start_gateway(f"gateway-{n}"))
            self.agents.append(self._agent(n, f"agent-{n}"))
        for gateway in self.gateways:
            gateway.wait_for_executors(len(self.gateways), timeout=60)

    def _agent(self, n: int, name: str) -> Process:
        concurrency = self.args.streams  # one executor can take every stream: a kill must not starve the rest
        return self.deployment.start_agent(self.gateways[n], self.token, self.upstream, name, concurrency)

    def note(self, what: str) -> None:
        self.events.append((round(time.monotonic() - self.started, 1), what))
        print(f"[{time.monotonic() - self.started:6.1f}s] {what}", flush=True)

    def kill_and_restart_gateway(self) -> None:
        victim = self.gateways[-1]
        victim.process.kill()
        self.note(f"SIGKILL {victim.process.name}")
        time.sleep(2)
        restarted = self.deployment.start_gateway(victim.process.name, port=victim.port)
        self.gateways[-1] = restarted
        self.note(f"{victim.process.name} restarted")

    def kill_and_replace_executor(self) -> None:
        victim = self.agents[0]
        victim.kill()
        self.note(f"SIGKILL {victim.name}")
        time.sleep(2)
        self.agents[0] = self._agent(0, f"{victim.name}-again")
        self.note(f"{victim.name} replaced")

    def restart_redis(self) -> None:
        self.redis.kill()
        self.note("SIGKILL redis-server")
        time.sleep(1)
        self.redis.start()
        self.note("redis-server restarted")

    def sample_rss(self) -> None:
        at = round(time.monotonic() - self.started, 1)
        for process in [gateway.process for gateway in self.gateways] + self.agents:
            self.rss.setdefault(process.name, []).append((at, rss_kib(process.popen.pid)))

    def busy(self) -> int:
        """Slots still counted busy across the live executors, as /healthz reports them."""
        return max(gateway.health().get("busy", 0) for gateway in self.gateways)

    def usage_rows(self) -> int:
        import psycopg

        with psycopg.connect(self.deployment.env["DATABASE_URL"]) as db:
            row = db.execute("SELECT coalesce(sum(calls), 0) FROM accounts_usagerecord WHERE key_id IS NOT NULL")
            return int(row.fetchone()[0])  # type: ignore[index]

    def stop(self) -> None:
        self.deployment.stop()
        self.redis.kill()


async def run(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="gemproxy-soak-"))
    with throwaway_postgres_database("gemproxy_soak") as database_url:
        soak = Soak(args, tmp, database_url)
        try:
            return await _run(soak, args)
        finally:
            soak.stop()


async def _run(soak: Soak, args: argparse.Namespace) -> dict:
    soak.start()
    urls = [gateway.url for gateway in soak.gateways]  # a restarted gateway keeps its port
    tally = Tally()
    stop = asyncio.Event()
    duration = args.minutes * 60
    clients = [asyncio.create_task(client(n, urls, soak.key, stop, tally)) for n in range(args.streams)]
    soak.started = time.monotonic()
    soak.note(f"{args.streams} clients on {len(urls)} gateways for {args.minutes} min")
    faults = [
        (0.25, soak.kill_and_restart_gateway),
        (0.50, soak.kill_and_replace_executor),
        (0.75, soak.restart_redis),
    ]
    loop = asyncio.get_running_loop()
    while (elapsed := time.monotonic() - soak.started) < duration:
        if faults and elapsed >= faults[0][0] * duration:
            await loop.run_in_executor(None, faults.pop(0)[1])
        soak.sample_rss()
        await asyncio.sleep(min(5.0, max(0.1, duration - elapsed)))
    stop.set()
    soak.note("load stopped; waiting for the calls in flight to end")
    await asyncio.wait(clients, timeout=CALL_TIMEOUT_SECONDS + 10)
    soak.sample_rss()

    # Every call has ended: slots must all be free (heartbeats heal a count within 3 s) and rows written (1 s).
    for _ in range(30):
        if not soak.busy() and soak.usage_rows() >= tally.responded:
            break
        await asyncio.sleep(1)
    rows = soak.usage_rows()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "parameters": {"streams": args.streams, "minutes": args.minutes, "gateways": args.gateways},
        "faults": soak.events,
        "calls": tally.calls,
        "answered_ok": tally.answered,
        "answered_any_status": tally.responded,
        "errors": dict(tally.errors.most_common()),
        "usage_rows": rows,
        "usage_rows_missing": max(0, tally.responded - rows),
        "usage_rows_beyond_answers": max(0, rows - tally.responded),
        "stuck_slots": soak.busy(),
        "rss_kib": {name: _summary(samples) for name, samples in soak.rss.items()},
    }


def _summary(samples: list[tuple[float, int | None]]) -> dict:
    values = [value for _, value in samples if value is not None]
    return {
        "first": values[0] if values else None,
        "max": max(values) if values else None,
        "last": values[-1] if values else None,
        "series": samples[:: max(1, len(samples) // 12)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streaming clients")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--gateways", type=int, default=2)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
