"""``python -m gemproxy_site.demo``: gemproxy working end to end on this machine, without Google.

What ``scripts/demo`` runs. It starts gemproxy's local stand-in for Gemini
(``executors.standin``), the gateway (``gemproxy_site.serve``) and one headless
executor (``executors.agent``) pointed at the stand-in, waits until the executor
is connected, prints the gateway's URL, a ready proxy key and calls to paste,
and runs until Ctrl-C (SIGINT), SIGTERM or SIGHUP, then stops all three.

The demo is an install of its own, ``var/demo/`` by default: its SQLite file,
secret key, credentials and logs live there, and the database, Redis and secret
key settings of the environment (a real install's) are never used.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 8000
HOST = "127.0.0.1"
MODEL = "gemini-2.5-flash"
DEMO_USER = "demo"
DEMO_EXECUTOR_LABEL = "demo (gemproxy stand-in)"
# Settings that would point the demo at a real install's data.
FOREIGN_SETTINGS = (
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "GEMPROXY_REDIS_PREFIX",
    "PUBLIC_BASE_URL",
    "ALLOWED_HOSTS",
)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class DemoError(Exception):
    """Something the user must read: printed as it is, and the demo exits 1."""


class Stop(Exception):
    """Raised by the signal handler: Ctrl-C, SIGTERM or SIGHUP."""


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="Try gemproxy without Google: the gateway, a headless executor and a local stand-in for Gemini.",
    )
    parser.add_argument(
        "--port", type=int, default=None, help=f"the gateway's port on {HOST} (default: GEMPROXY_PORT, else 8000)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=BASE_DIR / "var" / "demo", help="the demo's own install (default: var/demo)"
    )
    args = parser.parse_args(argv)
    if args.port is None:
        configured = os.environ.get("GEMPROXY_PORT", "").strip()
        if configured and not configured.isdigit():
            parser.error(f"GEMPROXY_PORT must be a port number, not {configured!r}")
        args.port = int(configured) if configured else DEFAULT_PORT
    if not 1 <= args.port <= 65535:
        parser.error(f"the port must be between 1 and 65535, not {args.port}")
    args.data_dir = args.data_dir.resolve()
    return args


def busy_port_message(port: int) -> str:
    other = port + 10 if port <= 65525 else port - 10
    return (
        f"Port {port} on {HOST} is already in use (is gemproxy, or another demo, running there?).\n"
        f"Choose another port: scripts/demo --port {other}   or   GEMPROXY_PORT={other} scripts/demo"
    )


def check_port_is_free(port: int) -> None:
    with socket.socket() as probe:
        # As Twisted binds it, so a port in TIME_WAIT does not count as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise DemoError(busy_port_message(port)) from None
            raise DemoError(f"Cannot listen on {HOST}:{port}: {exc.strerror}") from None


def demo_environment(data_dir: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in FOREIGN_SETTINGS}
    env.update(
        GEMPROXY_DATA_DIR=str(data_dir),
        DATABASE_URL=f"sqlite:///{data_dir / 'gemproxy.sqlite3'}",
        DJANGO_SETTINGS_MODULE="gemproxy_site.settings",
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare_install(data_dir: Path) -> tuple[str, str]:
    """Migrates the demo's database; returns its proxy key and executor token, reused from the last run if valid."""
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    from gemproxy_site.demo_credentials import demo_credentials

    try:
        return demo_credentials(data_dir / "credentials.json", DEMO_USER, DEMO_EXECUTOR_LABEL)
    finally:
        # The gateway is about to open the same SQLite file.
        connections.close_all()


def _prepare_child() -> None:
    """In the child, before exec: take signals again, and on Linux end with the demo, even one killed by SIGKILL."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def start(
    children: list[Child], name: str, args: list[str], env: dict[str, str], logs: Path, stdout: int | None = None
) -> Child:
    """Starts a child and lists it in ``children`` with no signal in between, so that none escapes stop_all."""
    log_path = logs / f"{name}.log"
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                [sys.executable, *args],
                cwd=BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log if stdout is None else stdout,
                stderr=log,
                preexec_fn=_prepare_child,  # no threads in the demo, so this is safe
            )
        child = Child(name, popen, log_path)
        children.append(child)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return child


def read_standin_url(standin: Child) -> str:
    """The stand-in prints its URL as its only line once it listens."""
    stream: IO[bytes] | None = standin.popen.stdout
    assert stream is not None
    ready, _, _ = select.select([stream], [], [], READY_TIMEOUT)
    line = stream.readline().decode().strip() if ready else ""
    if not line.startswith("http://"):
        raise DemoError(f"The stand-in for Gemini did not start:\n{standin.log_tail()}")
    return line


def health(base_url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:  # 503 until an executor is connected
        return json.load(error)
    except (OSError, ValueError):
        return None


def wait_until_ready(base_url: str, port: int, children: list[Child]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        check_children(children, port)
        state = health(base_url)
        if state and state.get("executors", 0) >= 1:
            return
        time.sleep(0.2)
    raise DemoError(f"The executor did not connect within {READY_TIMEOUT:.0f} s; logs: {children[0].log_path.parent}")


def check_children(children: list[Child], port: int) -> None:
    for child in children:
        if child.popen.poll() is not None:
            tail = child.log_tail()
            if child.name == "gateway" and "Address already in use" in tail:
                raise DemoError(busy_port_message(port))
            raise DemoError(f"The {child.name} stopped (exit status {child.popen.returncode}):\n{tail}")


def stop_all(children: list[Child]) -> None:
    """The executor first, the stand-in last; whatever ignores SIGTERM is killed after STOP_TIMEOUT."""
    for child in reversed(children):
        if child.popen.poll() is None:
            child.popen.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in reversed(children):
        try:
            child.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.popen.kill()
            child.popen.wait()
        if child.popen.stdout is not None:
            child.popen.stdout.close()


def banner(base_url: str, key: str, data_dir: Path) -> str:
    body = '{"contents":[{"parts":[{"text":"Hello"}]}]}'
    curl = (
        f'curl "{base_url}/v1beta/models/{MODEL}:generateContent" '
        f'-H "x-goog-api-key: {key}" -H "content-type: application/json" '
        f"-d '{body}'"
    )
    database = data_dir / "gemproxy.sqlite3"
    return f"""
gemproxy demo: the gateway at {base_url}, with one headless executor answering from
gemproxy's local stand-in for Gemini (not Google: it echoes your prompt back).

Gemini API base URL: {base_url}
Proxy key:           {key}

Call it with curl:
{curl}

or with Python (google-genai):
    from google import genai
    client = genai.Client(api_key="{key}", http_options={{"base_url": "{base_url}"}})
    print(client.models.generate_content(model="{MODEL}", contents="Hello").text)

The demo's own install is {data_dir} (logs in logs/); a real install's database is never touched.
Admin console: {base_url}/admin/, after creating an admin for the demo:
    GEMPROXY_DATA_DIR={data_dir} DATABASE_URL=sqlite:///{database} .venv/bin/python manage.py createsuperuser

Press Ctrl-C to stop.
"""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def run(args: argparse.Namespace) -> None:
    check_port_is_free(args.port)
    env = demo_environment(args.data_dir)
    logs = args.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for name in FOREIGN_SETTINGS:
        os.environ.pop(name, None)
    os.environ.update(env)
    key, token = prepare_install(args.data_dir)

    base_url = f"http://{HOST}:{args.port}"
    children: list[Child] = []
    try:
        standin = start(children, "standin", ["-m", "executors.standin", "--port", "0"], env, logs, subprocess.PIPE)
        standin_url = read_standin_url(standin)
        start(children, "gateway", ["-m", "gemproxy_site.serve", "-b", HOST, "-p", str(args.port)], env, logs)
        # Secrets in the environment, where ps does not show them; the stand-in takes any upstream key.
        agent_env = {**env, "GEMPROXY_EXECUTOR_TOKEN": token, "GEMINI_API_KEY": "the-stand-in-needs-no-key"}
        agent_args = ["-m", "executors.agent", "--server", base_url, "--upstream", standin_url, "--label", "demo"]
        start(children, "executor", agent_args, agent_env, logs)
        wait_until_ready(base_url, args.port, children)
        print(banner(base_url, key, args.data_dir), flush=True)
        while True:
            check_children(children, args.port)
            time.sleep(0.5)
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        stop_all(children)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stop)
    try:
        run(args)
    except Stop:
        print("gemproxy demo stopped.", flush=True)
    except DemoError as exc:
        sys.exit(f"scripts/demo: {exc}")


if __name__ == "__main__":
    main()
