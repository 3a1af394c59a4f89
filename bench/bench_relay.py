"""What the relay costs: run by hand, figures go into docs/benchmarks.md.

    .venv/bin/python bench/bench_relay.py [--quick] [--requests 2000] [--streams 500] [--redis URL]
    .venv/bin/python bench/bench_relay.py --ab REV_A REV_B [--rounds 5] [--quick]

Starts, on this machine: the fake upstream (``executors.standin``), one embedded
gateway (Daphne), one headless executor, and measures with an aiohttp client:

1. the upstream alone: generateContent straight to the stand-in, p50 at 1 client
   and req/s at 50;
2. through the gateway: added latency (p50/p99 minus the upstream's) at 1 and 50
   concurrent clients, req/s and its share of the upstream's alone;
3. 6-chunk streams (the stand-in's ``#chunks=6``): the added time to the first
   chunk (gateway minus the same upstream direct), at 1 and 10 clients;
4. chunk latency: from the moment a streaming upstream writes a chunk to the
   moment the client reads it, through executor and gateway;
5. memory per open stream: the gateway's RSS growth with N streams held open.

With each relayed run it reports the CPU time (user + system, from /proc) that
the gateway and the executor spent per call or per stream, the figure that
limits throughput. The proxy key carries every limit (requests and tokens per
minute and per day, concurrency), set far above what the run uses, because a
team's keys carry limits and admission then does real work.

``--redis URL`` runs the gateway distributed (channel layer, registry, counters
and the usage queue in that Redis, under a prefix of its own); set
``GEMPROXY_USAGE_QUEUE=false`` in the environment for the A/B of the usage queue.

``--ab REV_A REV_B`` measures two git revisions of this repository interleaved
in one run: a detached worktree of each (in a temporary directory, removed
afterwards), then the whole measurement A, B, A, B... for ``--rounds`` rounds;
it prints each figure's median and [min..max] per revision and the B/A ratio,
as JSON and as a Markdown table. The measuring code is this file's (and this
checkout's ``tests/e2e/harness.py``) for both; the processes measured
(manage.py, Daphne, the agent, the stand-in) run each revision's own code, from
its tree, with the Python running this script: both revisions must work with
this virtualenv's packages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ab import Revision, checkouts, git, markdown_table, summarise  # noqa: E402
from tests.e2e import harness  # noqa: E402
from tests.e2e.harness import PYTHON, Deployment, Process, free_port, wait_until  # noqa: E402

BODY = {"contents": [{"role": "user", "parts": [{"text": "benchmark"}]}]}
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
# The stand-in splits its answer into as many chunks as the prompt asks for.
SIX_CHUNKS = {"contents": [{"role": "user", "parts": [{"text": "benchmark #chunks=6"}]}]}
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"

# Every limit a key can carry, far above what a run uses, so none ever refuses.
KEY_LIMITS = {"rpm": 100_000_000, "rpd": 100_000_000, "tpm": 100_000_000, "tpd": 100_000_000, "concurrency": 100_000}
LIMIT_HEADERS = [
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-requests-day",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-limit-tokens-day",
    "x-ratelimit-limit-concurrent",
]

FULL = {"requests": 2000, "six_chunk_streams": 500, "chunk_streams": 30, "streams": 500}
QUICK = {"requests": 300, "six_chunk_streams": 100, "chunk_streams": 10, "streams": 50}


def bench_credentials(deployment: Deployment) -> tuple[str, str]:
    """A proxy key carrying every limit (``KEY_LIMITS``) and an executor token, made in ``deployment``."""
    limits = [f"--{name}={value}" for name, value in KEY_LIMITS.items()]
    key = deployment.manage("create_proxy_key", "--user", "bench", "--name", "bench", *limits)
    return key, deployment.executor_token("bench@example.com")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# One call of a load: it returns the latency it measured, in ms.
Call = Callable[[aiohttp.ClientSession], Awaitable[float]]


async def unary_call(session: aiohttp.ClientSession) -> float:
    """A whole generateContent call."""
    started = time.perf_counter()
    async with session.post(GENERATE, json=BODY) as response:
        body = await response.read()
        assert response.status == 200, body
    return (time.perf_counter() - started) * 1000


async def six_chunk_stream(session: aiohttp.ClientSession) -> float:
    """A 6-chunk stream read to its end; the time to its first chunk."""
    started = time.perf_counter()
    first, chunks = 0.0, 0
    async with session.post(STREAM, json=SIX_CHUNKS) as response:
        assert response.status == 200, await response.text()
        async for line in response.content:
            if line.startswith(b"data: "):
                chunks += 1
                if chunks == 1:
                    first = (time.perf_counter() - started) * 1000
    assert chunks == 6, chunks
    return first


@dataclass
class Run:
    latencies: list[float]  # ms, one per call
    seconds: float  # wall time of the measured calls
    cpu_ms: dict[str, float]  # CPU per call of each watched process

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds


async def load(base: str, headers: dict, call: Call, count: int, concurrency: int, watch: dict[str, int]) -> Run:
    """``count`` calls with ``concurrency`` in flight, after a warm-up; CPU of ``watch`` (name: pid) per call."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:

        async def worker(calls: Iterator[int], latencies: list[float]) -> None:
            for _ in calls:
                latencies.append(await call(session))

        # Opens every connection and fills the processes' caches before anything is counted.
        warm_up = iter(range(max(2 * concurrency, count // 10)))
        await asyncio.gather(*(worker(warm_up, []) for _ in range(concurrency)))
        latencies: list[float] = []
        calls = iter(range(count))
        cpu_before = {name: cpu_seconds(pid) for name, pid in watch.items()}
        started = time.perf_counter()
        await asyncio.gather(*(worker(calls, latencies) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        cpu = {name: (cpu_seconds(pid) - cpu_before[name]) * 1000 / count for name, pid in watch.items()}
    return Run(latencies, seconds, cpu)


async def limit_headers(base: str, headers: dict) -> dict[str, str]:
    """The limits the gateway says the key has, from one call's answer: proof that admission counts them."""
    async with aiohttp.ClientSession(base, headers=headers) as session:
        async with session.post(GENERATE, json=BODY) as response:
            await response.read()
            found = {name: response.headers[name] for name in LIMIT_HEADERS if name in response.headers}
    assert len(found) == len(LIMIT_HEADERS), f"the key's limits are not applied: {found}"
    return found


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


def code_under_test(tree: Path, env: dict[str, str], pids: dict[str, int]) -> dict[str, Any]:
    """Which code the measured processes run: the tree's commit, their working directories, where imports resolve.

    Each process is started in ``tree`` with ``python -m`` or ``manage.py``, so the tree comes first on its
    sys.path; this checks it rather than trusting it.
    """
    cwds = {name: os.readlink(f"/proc/{pid}/cwd") for name, pid in pids.items()}
    probe = "import gemproxy_site, executors.agent; print(gemproxy_site.__file__); print(executors.agent.__file__)"
    modules = subprocess.run(
        [PYTHON, "-c", probe], cwd=tree, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    wrong = [path for path in [*cwds.values(), *modules] if not Path(path).resolve().is_relative_to(tree.resolve())]
    assert not wrong, f"not running the code of {tree}: {wrong}"
    return {
        "tree": str(tree),
        "commit": git(tree, "rev-parse", "HEAD"),
        "uncommitted_changes": bool(git(tree, "status", "--porcelain", "--untracked-files=no")),
        "cwd": cwds,
        "modules": modules,
    }


async def measure(args: argparse.Namespace, tree: Path = ROOT) -> dict:
    """The whole measurement, with the gateway, the agent and the stand-in run from ``tree``."""
    # The harness starts every process (and manage.py) in its ROOT: point it at the tree under test.
    harness.ROOT = tree
    tmp = Path(tempfile.mkdtemp(prefix="gemproxy-bench-"))
    extra = {"GEMPROXY_DISPATCH_WAIT": "30", "LOG_LEVEL": "WARNING"}
    if args.redis:
        extra |= {"REDIS_URL": args.redis, "GEMPROXY_REDIS_PREFIX": f"bench:{os.getpid()}:{time.time_ns()}:"}
    results: dict[str, Any] = {"load_average_before": os.getloadavg()[0]}
    deployment = Deployment(tmp, extra)
    try:
        upstream_port, ticks_port = free_port(), free_port()
        fake = Process(
            "standin", [PYTHON, "-m", "executors.standin", "--port", str(upstream_port)], deployment.env, tmp
        )
        ticks = Process("ticks", [PYTHON, __file__, "--serve-ticks", str(ticks_port)], deployment.env, tmp)
        deployment.processes += [fake, ticks]
        key, token = bench_credentials(deployment)
        gateway = deployment.start_gateway()
        upstream = f"http://127.0.0.1:{upstream_port}"
        wait_until(lambda: _listening(upstream_port) and _listening(ticks_port), what="upstreams")
        agent = deployment.start_agent(gateway, token, upstream, name="agent", concurrency=args.streams + 50)
        gateway.wait_for_executors(1)
        headers = {"x-goog-api-key": key}
        pids = {"gateway": gateway.process.popen.pid, "agent": agent.popen.pid}
        results["code"] = code_under_test(tree, deployment.env, {**pids, "standin": fake.popen.pid})
        results["key_limits"] = await limit_headers(gateway.url, headers)

        for concurrency in (1, 50):
            direct = await load(upstream, {}, unary_call, args.requests, concurrency, {})
            relayed = await load(gateway.url, headers, unary_call, args.requests, concurrency, pids)
            d, r = report("direct", direct.latencies), report("gateway", relayed.latencies)
            results[f"c{concurrency}"] = {
                "direct": d,
                "gateway": r,
                "added_p50_ms": round(r["p50"] - d["p50"], 3),
                "added_p99_ms": round(r["p99"] - d["p99"], 3),
                "upstream_rps": round(direct.per_second, 1),
                "gateway_rps": round(relayed.per_second, 1),
                "rps_share_of_upstream": round(relayed.per_second / direct.per_second, 3),
                "gateway_cpu_ms_per_call": round(relayed.cpu_ms["gateway"], 3),
                "agent_cpu_ms_per_call": round(relayed.cpu_ms["agent"], 3),
            }

        for concurrency in (1, 10):
            count = args.six_chunk_streams
            direct = await load(upstream, {}, six_chunk_stream, count, concurrency, {})
            relayed = await load(gateway.url, headers, six_chunk_stream, count, concurrency, pids)
            d, r = report("direct first chunk", direct.latencies), report("gateway first chunk", relayed.latencies)
            results[f"six_chunk_c{concurrency}"] = {
                "direct": d,
                "gateway": r,
                "added_first_chunk_p50_ms": round(r["p50"] - d["p50"], 3),
                "added_first_chunk_p99_ms": round(r["p99"] - d["p99"], 3),
                "gateway_streams_per_s": round(relayed.per_second, 1),
                "gateway_cpu_ms_per_stream": round(relayed.cpu_ms["gateway"], 3),
                "agent_cpu_ms_per_stream": round(relayed.cpu_ms["agent"], 3),
            }

        # The same executor, now pointed at the ticking upstream.
        agent.stop()
        gateway.wait_for_executors(0)
        deployment.start_agent(
            gateway, token, f"http://127.0.0.1:{ticks_port}", name="agent-ticks", concurrency=args.streams + 50
        )
        gateway.wait_for_executors(1)
        chunks = await chunk_latencies(gateway.url, headers, args.chunk_streams)
        results["chunk_latency_ms"] = report("chunk", chunks)
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


def figures(results: dict) -> dict[str, float]:
    """The headline figures of one measurement (those issue 12 asks for), by a name that says the unit."""
    c1, c50 = results["c1"], results["c50"]
    s1, s10 = results["six_chunk_c1"], results["six_chunk_c10"]
    return {
        "upstream alone: p50, 1 client (ms)": c1["direct"]["p50"],
        "upstream alone: req/s, 50 clients": c50["upstream_rps"],
        "added p50, 1 client (ms)": c1["added_p50_ms"],
        "added p99, 1 client (ms)": c1["added_p99_ms"],
        "added p50, 50 clients (ms)": c50["added_p50_ms"],
        "added p99, 50 clients (ms)": c50["added_p99_ms"],
        "req/s, 50 clients": c50["gateway_rps"],
        "req/s at 50 clients / upstream's": c50["rps_share_of_upstream"],
        "gateway CPU / call, 1 client (ms)": c1["gateway_cpu_ms_per_call"],
        "gateway CPU / call, 50 clients (ms)": c50["gateway_cpu_ms_per_call"],
        "executor CPU / call, 1 client (ms)": c1["agent_cpu_ms_per_call"],
        "executor CPU / call, 50 clients (ms)": c50["agent_cpu_ms_per_call"],
        "added time to first chunk, 1 client (ms)": s1["added_first_chunk_p50_ms"],
        "added time to first chunk, 10 clients (ms)": s10["added_first_chunk_p50_ms"],
        "gateway CPU / 6-chunk stream, 1 client (ms)": s1["gateway_cpu_ms_per_stream"],
        "gateway CPU / 6-chunk stream, 10 clients (ms)": s10["gateway_cpu_ms_per_stream"],
        "executor CPU / 6-chunk stream, 10 clients (ms)": s10["agent_cpu_ms_per_stream"],
        "chunk latency p50 (ms)": results["chunk_latency_ms"]["p50"],
        "memory per open stream (KiB)": results["streams"]["kib_per_stream"],
    }


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def machine() -> str:
    models = [
        line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line
    ]
    cpu = models[0] if models else platform.machine()
    return f"{platform.node()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def run_ab(args: argparse.Namespace) -> tuple[dict, str]:
    """Both revisions measured alternately for ``args.rounds`` rounds; the summary as JSON and as Markdown."""
    started = datetime.now(UTC)
    rounds: list[dict[str, Any]] = []
    with checkouts(ROOT, args.ab) as revisions:
        for number in range(1, args.rounds + 1):
            for revision in revisions:
                print(f"round {number}/{args.rounds}: {revision.label} {revision.short}", file=sys.stderr)
                results = asyncio.run(measure(args, revision.tree))
                assert results["code"]["commit"] == revision.commit, results["code"]
                rounds.append(
                    {
                        "revision": revision.label,
                        "load_average_before": results["load_average_before"],
                        "code": results["code"],
                        "figures": figures(results),
                    }
                )
    summary = summarise([(r["revision"], r["figures"]) for r in rounds], [r.label for r in revisions])
    output = {
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "options": _options(args),
        "revisions": {r.label: {"rev": r.rev, "commit": r.commit, "subject": r.subject} for r in revisions},
        "summary": summary,
        "rounds": rounds,
    }
    loads = [r["load_average_before"] for r in rounds]
    return output, _ab_markdown(started, args, revisions, summary, (min(loads), max(loads)))


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "quick": args.quick,
        "rounds": args.rounds if args.ab else 1,
        "redis": bool(args.redis),
        **{name: getattr(args, name) for name in FULL},
    }


def _ab_markdown(
    started: datetime, args: argparse.Namespace, revisions: list[Revision], summary: dict, loads: tuple[float, float]
) -> str:
    a, b = revisions
    mode = "distributed (Redis)" if args.redis else "embedded (SQLite, in-memory channel layer)"
    sizes = ", ".join(f"{name} {getattr(args, name)}" for name in FULL)
    return "\n".join(
        [
            f"### {started:%Y-%m-%d %H:%M} UTC: `{b.short}` ({b.rev}) against `{a.short}` ({a.rev})",
            "",
            f"Machine: {machine()}, load average {loads[0]:.1f} to {loads[1]:.1f} before the rounds; {mode};",
            f"{args.rounds} rounds, A and B alternating; {sizes}.",
            f"A `{a.short}`: {a.subject}",
            f"B `{b.short}`: {b.subject}",
            "Median [min..max] over the rounds; B/A is the ratio of the medians.",
            "",
            markdown_table(summary, revisions),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls and streams: a smoke run of a minute or so")
    parser.add_argument("--requests", type=int, help=f"unary calls per run (default {FULL['requests']})")
    parser.add_argument("--six-chunk-streams", type=int, help=f"6-chunk streams per run ({FULL['six_chunk_streams']})")
    parser.add_argument("--chunk-streams", type=int, help=f"streams timed for chunk latency ({FULL['chunk_streams']})")
    parser.add_argument("--streams", type=int, help=f"streams held open for memory ({FULL['streams']})")
    parser.add_argument("--redis", default="", help="run distributed on this Redis (a key prefix of its own)")
    parser.add_argument("--ab", nargs=2, metavar=("REV_A", "REV_B"), help="measure two git revisions interleaved")
    parser.add_argument("--rounds", type=int, default=5, help="with --ab: rounds of A then B (default 5)")
    parser.add_argument("--serve-ticks", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_ticks:
        serve_ticks(args.serve_ticks)
        return
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.ab:
        output, table = run_ab(args)
        print(json.dumps(output, indent=2))
        print()
        print(table)
        return
    results = asyncio.run(measure(args))
    results = {"machine": machine(), "options": _options(args), **results, "figures": figures(results)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
