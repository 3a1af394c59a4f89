"""What the relay costs: run by hand, figures go into docs/benchmarks.md.

    .venv/bin/python bench/bench_relay.py [--requests 2000] [--streams 500]

Starts, on this machine: the fake upstream, one embedded gateway (Daphne), one
headless executor, and measures with an aiohttp client:

1. added latency, non-streaming generateContent: p50/p99 through the gateway
   minus p50/p99 straight to the fake upstream, at 1 and at 50 concurrent clients;
2. requests per second through the one gateway process at 50 concurrent clients;
3. chunk latency: from the moment a streaming upstream writes a chunk to the
   moment the client reads it, through executor and gateway;
4. memory per open stream: the gateway's RSS growth with N streams held open.

With each relayed run it reports the CPU time the gateway and the executor
spent per call (user + system, from /proc), the figure that limits throughput.

``--redis URL`` runs the gateway distributed (channel layer, registry, counters
and the usage queue in that Redis, under a prefix of its own); set
``GEMPROXY_USAGE_QUEUE=false`` in the environment for the A/B of the usage queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import PYTHON, Deployment, Process, free_port, wait_until  # noqa: E402

BODY = {"contents": [{"role": "user", "parts": [{"text": "benchmark"}]}]}
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def timed_calls(base: str, headers: dict, count: int, concurrency: int) -> tuple[list[float], float]:
    """Latencies in ms of ``count`` generateContent calls with ``concurrency`` in flight, and the wall time."""
    latencies: list[float] = []
    remaining = iter(range(count))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:

        async def worker() -> None:
            for _ in remaining:
                started = time.perf_counter()
                async with session.post(GENERATE, json=BODY) as response:
                    await response.read()
                    assert response.status == 200, await response.text()
                latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, 10))))  # warm up connections
        latencies.clear()
        remaining = iter(range(count))
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started


# A tiny upstream whose stream chunks say when they were written.
async def _ticks(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    count = int(request.query.get("ticks", "20"))
    hold = float(request.query.get("hold", "0"))
    for n in range(count):
        await asyncio.sleep(0.02)
        event = {"candidates": [{"content": {"parts": [{"text": f"{n}"}]}}], "t": time.time()}
        await response.write(f"data: {json.dumps(event)}\r\n\r\n".encode())
    if hold:
        await asyncio.sleep(hold)
    return response


def serve_ticks(port: int) -> None:
    app = web.Application()
    app.router.add_post("/{version}/models/{model}:streamGenerateContent", _ticks)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def chunk_latencies(base: str, headers: dict, streams: int) -> list[float]:
    latencies: list[float] = []
    async with aiohttp.ClientSession(base, headers=headers) as session:
        for _ in range(streams):
            url = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&ticks=20"
            async with session.post(url, json=BODY) as response:
                async for line in response.content:
                    if line.startswith(b"data: "):
                        latencies.append((time.time() - json.loads(line[6:])["t"]) * 1000)
    return latencies[streams:]  # the first chunk of each stream includes connection set-up


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def hold_streams(base: str, headers: dict, count: int, gateway_pid: int) -> tuple[int, int]:
    """RSS of the gateway before and with ``count`` streams open (the upstream holds them)."""
    before = rss_kib(gateway_pid)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:
        opened = asyncio.Event()
        started = 0

        async def one() -> None:
            nonlocal started
            url = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&ticks=1&hold=30"
            async with session.post(url, json=BODY) as response:
                await response.content.readline()
                started += 1
                if started == count:
                    opened.set()
                await response.read()

        tasks = [asyncio.create_task(one()) for _ in range(count)]
        await asyncio.wait_for(opened.wait(), 120)
        await asyncio.sleep(1)
        during = rss_kib(gateway_pid)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return before, during


def report(name: str, values: list[float]) -> dict:
    return {
        "name": name,
        "n": len(values),
        "p50": round(statistics.median(values), 3),
        "p99": round(percentile(values, 0.99), 3),
    }


async def measure(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="gemproxy-bench-"))
    extra = {"GEMPROXY_DISPATCH_WAIT": "30", "LOG_LEVEL": "WARNING"}
    if args.redis:
        extra |= {"REDIS_URL": args.redis, "GEMPROXY_REDIS_PREFIX": f"bench:{os.getpid()}:{time.time_ns()}:"}
    deployment = Deployment(tmp, extra)
    results: dict = {"machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}"}
    try:
        upstream_port, ticks_port = free_port(), free_port()
        fake = Process(
            "standin", [PYTHON, "-m", "executors.standin", "--port", str(upstream_port)], deployment.env, tmp
        )
        ticks = Process("ticks", [PYTHON, __file__, "--serve-ticks", str(ticks_port)], deployment.env, tmp)
        deployment.processes += [fake, ticks]
        key = deployment.proxy_key("bench")
        token = deployment.executor_token("bench@example.com")
        gateway = deployment.start_gateway()
        upstream = f"http://127.0.0.1:{upstream_port}"
        wait_until(lambda: _listening(upstream_port) and _listening(ticks_port), what="upstreams")
        agent = deployment.start_agent(gateway, token, upstream, name="agent", concurrency=args.streams + 50)
        gateway.wait_for_executors(1)
        headers = {"x-goog-api-key": key}

        for concurrency in (1, 50):
            direct, _ = await timed_calls(upstream, {}, args.requests, concurrency)
            pids = {"gateway": gateway.process.popen.pid, "agent": agent.popen.pid}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            relayed, wall = await timed_calls(gateway.url, headers, args.requests, concurrency)
            # timed_calls makes its calls twice (the first round warms the connections up): CPU covers both.
            calls = 2 * args.requests
            cpu = {name: (cpu_seconds(pid) - cpu_before[name]) * 1000 / calls for name, pid in pids.items()}
            d, r = report("direct", direct), report("gateway", relayed)
            results[f"c{concurrency}"] = {
                "direct": d,
                "gateway": r,
                "added_p50_ms": round(r["p50"] - d["p50"], 3),
                "added_p99_ms": round(r["p99"] - d["p99"], 3),
                "gateway_rps": round(len(relayed) / wall, 1),
                "gateway_cpu_ms_per_call": round(cpu["gateway"], 3),
                "agent_cpu_ms_per_call": round(cpu["agent"], 3),
            }

        # The same executor, now pointed at the ticking upstream.
        agent.stop()
        gateway.wait_for_executors(0)
        deployment.start_agent(
            gateway, token, f"http://127.0.0.1:{ticks_port}", name="agent-ticks", concurrency=args.streams + 50
        )
        gateway.wait_for_executors(1)
        results["chunk_latency_ms"] = report("chunk", await chunk_latencies(gateway.url, headers, 30))
        before, during = await hold_streams(gateway.url, headers, args.streams, gateway.process.popen.pid)
        results["streams"] = {
            "open": args.streams,
            "gateway_rss_before_kib": before,
            "gateway_rss_during_kib": during,
            "kib_per_stream": round((during - before) / args.streams, 1),
        }
    finally:
        deployment.stop()
    return results


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--redis", default="", help="run distributed on this Redis (a key prefix of its own)")
    parser.add_argument("--serve-ticks", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_ticks:
        serve_ticks(args.serve_ticks)
        return
    print(json.dumps(asyncio.run(measure(args)), indent=2))


if __name__ == "__main__":
    main()
