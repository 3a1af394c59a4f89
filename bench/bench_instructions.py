"""Instructions the gateway executes per relayed call, counted by valgrind's callgrind: run by hand.

    .venv/bin/python bench/bench_instructions.py [TREE ...] [--calls 400] [--clients 1] [--floor]

CPU time on a shared 2-core VM moves by 10 to 30% between runs, more than most
single changes save; an instruction count moves by about 2%, whatever else the
machine does. For each TREE (a checkout of this repository; default: this one)
it starts the stand-in upstream, a gateway under callgrind (instrumentation off
until the measured calls), and a headless executor, warms up, then counts the
gateway's instructions over ``--calls`` generateContent calls at one client
(``--clients N``: N at once, which shows the work a call costs only when it is
alone, such as the event loop's turns and timers).
The counts include every thread of the gateway (its usage writer too), not the
kernel's work. Callgrind's dumps are kept, and their paths printed:
``callgrind_annotate --tree=caller DUMP`` shows the C functions behind the
count, which Python's profilers do not see (a TypeError formatted and dropped
by every ``bytes in bytes`` test, a regex scanning a character at a time).

``--floor`` measures each TREE's server (``gemproxy_site.serve``: Daphne with
the tree's HTTP channel, reactor and event loop) answering every request with a
fixed answer from a trivial ASGI app: what serving HTTP costs before the relay.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_relay import _listening, bench_credentials, load, unary_call  # noqa: E402
from tests.e2e import harness  # noqa: E402
from tests.e2e.harness import PYTHON, Deployment, Gateway, Process, free_port, wait_until  # noqa: E402

FLOOR_APP = """
async def application(scope, receive, send):
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"candidates": []}'})
"""


def under_callgrind(out: Path, command: list[str]) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", *command]


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def instructions(out: Path) -> int:
    """What the dumps of ``out`` counted (the instrumented stretch's dump holds it all)."""
    return max(
        int(line.split()[1])
        for dump in glob.glob(f"{out}*")
        for line in Path(dump).read_text(errors="replace").splitlines()
        if line.startswith("totals:")
    )


async def counted(pid: int, out: Path, base: str, headers: dict, calls: int, clients: int = 1) -> float:
    """Instructions per call of ``calls`` calls by ``clients`` clients at once, after a warm-up."""
    await load(base, headers, unary_call, 200, clients, {})
    await asyncio.to_thread(control, pid, "-i", "on")
    await load(base, headers, unary_call, calls, clients, {})
    await asyncio.to_thread(control, pid, "-i", "off")
    await asyncio.to_thread(control, pid, "-d")
    print(f"  callgrind's dumps: {out}* (callgrind_annotate --tree=caller shows where C spent them)", file=sys.stderr)
    return await asyncio.to_thread(instructions, out) / calls


async def relay(tree: Path, calls: int, clients: int = 1) -> float:
    harness.ROOT = tree
    tmp = Path(tempfile.mkdtemp(prefix="gemproxy-instructions-"))
    deployment = Deployment(tmp, {"GEMPROXY_DISPATCH_WAIT": "30", "LOG_LEVEL": "WARNING"})
    try:
        upstream_port, port = free_port(), free_port()
        standin = [PYTHON, "-m", "executors.standin", "--port", str(upstream_port)]
        deployment.processes.append(Process("standin", standin, deployment.env, tmp))
        key, token = bench_credentials(deployment)
        serve = [PYTHON, "-m", "gemproxy_site.serve", "-b", "127.0.0.1", "-p", str(port), "--access-log", "-"]
        process = Process("gateway", under_callgrind(tmp / "callgrind.out", serve), deployment.env, tmp)
        deployment.processes.append(process)
        gateway = Gateway(process, port)
        wait_until(lambda: gateway.accepting() and _listening(upstream_port), 300, "the gateway under callgrind")
        deployment.start_agent(gateway, token, f"http://127.0.0.1:{upstream_port}", name="agent", concurrency=50)
        # Under callgrind the gateway answers slowly.
        gateway.wait_for_executors(1, timeout=300, answer_within=60)
        headers = {"x-goog-api-key": key}
        return await counted(process.popen.pid, tmp / "callgrind.out", gateway.url, headers, calls, clients)
    finally:
        deployment.stop()


def floor(calls: int, tree: Path) -> float:
    """Instructions per request of ``tree``'s server (``gemproxy_site.serve``) answering from FLOOR_APP."""
    tmp = Path(tempfile.mkdtemp(prefix="gemproxy-instructions-"))
    (tmp / "floor_app.py").write_text(FLOOR_APP)
    port = free_port()
    serve = (
        f"import sys; sys.path[:0] = [{str(tree)!r}, {str(tmp)!r}]; from gemproxy_site.serve import main; "
        f"main(['-b', '127.0.0.1', '-p', '{port}'], application='floor_app:application')"
    )
    command = under_callgrind(tmp / "callgrind.out", [PYTHON, "-c", serve])
    env = {**Deployment(tmp, {}).env, "PYTHONPATH": str(tree)}
    daphne = subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _listening(port), 300, "the server under callgrind")
        return asyncio.run(counted(daphne.pid, tmp / "callgrind.out", f"http://127.0.0.1:{port}", {}, calls))
    finally:
        daphne.terminate()
        daphne.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", type=Path)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--clients", type=int, default=1, help="calls in flight at once (the relay only)")
    parser.add_argument("--floor", action="store_true")
    args = parser.parse_args()
    for tree in args.trees or [ROOT]:
        if args.floor:
            print(f"{tree}: a fixed answer, {floor(args.calls, tree.resolve()) / 1000:.0f} k instructions per request")
        else:
            per_call = asyncio.run(relay(tree.resolve(), args.calls, args.clients))
            print(f"{tree}: {per_call / 1000:.0f} k instructions per call, {args.clients} client(s)")


if __name__ == "__main__":
    main()
