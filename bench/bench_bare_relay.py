"""The gateway beside a bare relay (``bench/bare_relay.py``): what this machine costs any Python relay.

    .venv/bin/python bench/bench_bare_relay.py [--requests 1000] [--rounds 3]

Starts the stand-in, the bare relay with its own headless executor, and the
gateway (a key carrying every limit, as ``bench_relay.py`` does) with its own,
then measures unary calls at 1 and 50 clients: the upstream alone, through the
the bare relay, through the gateway, interleaved for ``--rounds`` rounds. For each relay
it prints the added p50, req/s as a share of the upstream's, and the CPU per
call of the relay and of its executor, with the medians over rounds and
[min..max], as JSON and as a Markdown table for docs/benchmarks.md.

The bare relay does only what a relay must: read the call, send one frame over a
WebSocket, wait, write the answer. What the gateway spends above it is what its
features (keys, limits, usage, logs, metrics, Django) and its layers cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_relay import _listening, bench_credentials, load, machine, report, unary_call  # noqa: E402
from tests.e2e.harness import PYTHON, Deployment, Process, free_port, wait_until  # noqa: E402

CONCURRENCIES = (1, 50)


async def measure(requests: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    tmp = Path(tempfile.mkdtemp(prefix="gemproxy-bare-"))
    deployment = Deployment(tmp, {"GEMPROXY_DISPATCH_WAIT": "30", "LOG_LEVEL": "WARNING"})
    figures: dict[str, dict[str, list[float]]] = {}
    try:
        upstream_port, bare_port = free_port(), free_port()
        standin = Process(
            "standin", [PYTHON, "-m", "executors.standin", "--port", str(upstream_port)], deployment.env, tmp
        )
        bare = Process("bare-relay", [PYTHON, str(ROOT / "bench" / "bare_relay.py"), "--port", str(bare_port)],
                        deployment.env, tmp)  # fmt: skip
        deployment.processes += [standin, bare]
        key, token = bench_credentials(deployment)
        gateway = deployment.start_gateway()
        upstream = f"http://127.0.0.1:{upstream_port}"
        wait_until(lambda: _listening(upstream_port) and _listening(bare_port), what="the stand-in and the bare relay")
        agent = deployment.start_agent(gateway, token, upstream, name="agent", concurrency=100)
        bare_url = f"http://127.0.0.1:{bare_port}"
        bare_agent = Process(
            "bare-agent",
            [PYTHON, "-m", "executors.agent", "--server", bare_url, "--upstream", upstream, "--concurrency", "100"],
            {**deployment.env, "GEMPROXY_EXECUTOR_TOKEN": "gpe_bare"},
            tmp,
        )
        deployment.processes.append(bare_agent)
        gateway.wait_for_executors(1)
        relays = {
            "bare relay": (bare_url, {}, {"relay": bare.popen.pid, "executor": bare_agent.popen.pid}),
            "gateway": (
                gateway.url,
                {"x-goog-api-key": key},
                {"relay": gateway.process.popen.pid, "executor": agent.popen.pid},
            ),
        }
        for number in range(1, rounds + 1):
            print(f"round {number}/{rounds}", file=sys.stderr)
            for concurrency in CONCURRENCIES:
                direct = await load(upstream, {}, unary_call, requests, concurrency, {})
                upstream_p50 = report("direct", direct.latencies)["p50"]
                _add(figures, f"upstream alone: p50, {concurrency} client(s) (ms)", upstream_p50)
                for name, (url, headers, pids) in relays.items():
                    run = await load(url, headers, unary_call, requests, concurrency, pids)
                    p50 = report(name, run.latencies)["p50"]
                    per = f"{concurrency} client(s)"
                    _add(figures, f"{name}: added p50, {per} (ms)", round(p50 - upstream_p50, 3))
                    _add(figures, f"{name}: req/s at {per} / upstream's", round(run.per_second / direct.per_second, 3))
                    _add(figures, f"{name}: relay CPU / call, {per} (ms)", round(run.cpu_ms["relay"], 3))
                    _add(figures, f"{name}: executor CPU / call, {per} (ms)", round(run.cpu_ms["executor"], 3))
    finally:
        deployment.stop()
    return figures


def _add(figures: dict, name: str, value: float) -> None:
    figures.setdefault(name, {"values": []})["values"].append(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="unary calls per load (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of upstream, bare relay, gateway (default 3)")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.requests, args.rounds))
    summary = {
        name: {"median": statistics.median(f["values"]), "min": min(f["values"]), "max": max(f["values"])}
        for name, f in figures.items()
    }
    print(json.dumps({"machine": machine(), "requests": args.requests, "rounds": args.rounds, "figures": summary},
                     indent=2))  # fmt: skip
    print("\n| figure | median [min..max] |\n| --- | --- |")
    for name, f in summary.items():
        print(f"| {name} | {f['median']:g} [{f['min']:g}..{f['max']:g}] |")


if __name__ == "__main__":
    main()
