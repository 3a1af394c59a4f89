"""Real processes for end-to-end tests: Daphne gateways, headless executors, and the fake upstream.

Everything runs on 127.0.0.1 with ports chosen by the OS. Processes write to
log files under the test's temporary directory; a failing test shows them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.fake_upstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Process:
    """A child process whose output goes to a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """Die at once, as a crashed machine or a closed laptop would."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


class Deployment:
    """One gemproxy installation: its settings, database and processes."""

    def __init__(self, tmp: Path, extra_env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        inherited = {name: value for name, value in os.environ.items() if name not in ("REDIS_URL", "DATABASE_URL")}
        self.env = {
            **inherited,
            "GEMPROXY_DATA_DIR": str(tmp),
            "DATABASE_URL": f"sqlite:///{tmp / 'gemproxy.sqlite3'}",
            "SECRET_KEY": "e2e-secret-key-not-for-production",
            "PYTHONUNBUFFERED": "1",
            "GEMPROXY_DISPATCH_WAIT": "3",
            "GEMPROXY_HEARTBEAT_INTERVAL": "2",
            "GEMPROXY_HEARTBEAT_TIMEOUT": "6",
            **(extra_env or {}),
        }
        self.processes: list[Process] = []
        self.manage("migrate", "--noinput")

    def manage(self, *args: str) -> str:
        """Run a management command; its last line of stdout."""
        result = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, check=True
        )
        lines = result.stdout.strip().splitlines()
        return lines[-1] if lines else ""

    def proxy_key(self, user: str = "alice") -> str:
        return self.manage("create_proxy_key", "--user", user)

    def executor_token(self, label: str = "ana@example.com") -> str:
        return self.manage("create_executor_token", "--label", label)

    def start_gateway(self, name: str = "gateway", port: int | None = None, **settings: str) -> Gateway:
        """A Daphne process of this install; ``settings`` are extra environment variables for it alone."""
        port = port or free_port()
        process = Process(
            name,
            [PYTHON, "-m", "gemproxy_site.serve", "-b", "127.0.0.1", "-p", str(port), "--access-log", "-"],
            {**self.env, **settings},
            self.tmp,
        )
        self.processes.append(process)
        gateway = Gateway(process, port)
        wait_until(gateway.accepting, what=f"{name} to listen on {port}")
        return gateway

    def start_gateway_with_agent(self, name: str, token: str, upstream: str, **settings: str) -> Gateway:
        """A gateway of its own with one headless executor connected to it."""
        gateway = self.start_gateway(name, **settings)
        self.start_agent(gateway, token, upstream, name=f"{name}-agent")
        gateway.wait_for_executors(1)
        return gateway

    def start_agent(
        self, gateway: Gateway, token: str, upstream: str, name: str, concurrency: int = 4, **settings: str
    ) -> Process:
        """A headless executor; ``settings`` are extra environment variables for it alone."""
        process = Process(
            name,
            [
                PYTHON,
                "-m",
                "executors.agent",
                "--server",
                gateway.url,
                "--upstream",
                upstream,
                "--concurrency",
                str(concurrency),
            ],
            # As the README advises: secrets in the environment, where ps does not show them.
            {**self.env, "GEMPROXY_EXECUTOR_TOKEN": token, "GEMINI_API_KEY": f"upstream-key-of-{name}", **settings},
            self.tmp,
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


class Gateway:
    def __init__(self, process: Process, port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def accepting(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def health(self, timeout: float = 5.0) -> dict:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def wait_for_executors(self, count: int, timeout: float = 20.0, answer_within: float = 5.0) -> None:
        wait_until(
            lambda: self.health(answer_within)["executors"] == count, timeout, f"{count} executors on {self.url}"
        )


class ThreadedUpstream:
    """The fake upstream on its own event loop in a thread, so sync SDK calls can run in the test."""

    def __init__(self, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.fake = FakeUpstream(**options)
        self.call(self.fake.start())
        self.url = self.fake.url

    def call(self, coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self.fake.release)

    def wait_for(self, event_name: str, timeout: float = 10.0) -> None:
        event: asyncio.Event = getattr(self.fake, event_name)
        future: Future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(event.wait(), timeout), self._loop)
        future.result(timeout + 1)

    @property
    def requests(self) -> list:
        return list(self.fake.requests)

    def stop(self) -> None:
        self.call(self.fake.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class ScriptedExecutor:
    """A raw protocol-v1 executor whose answers a test writes frame by frame.

    ``answer(request)`` returns the frames to send for a task (their ``id`` is
    filled in); without ``answer`` it never answers at all. It says hello,
    answers pings, and keeps every frame it received in ``frames``.
    """

    def __init__(self, gateway: Gateway, token: str, answer: Callable[[dict], list[dict]] | None = None) -> None:
        self.frames: list[dict] = []
        self._answer = answer
        url = gateway.url.replace("http", "ws", 1) + "/ws/executor"
        self._socket = connect(url, additional_headers={"Authorization": f"Bearer {token}"}).__enter__()
        hello = {"type": "hello", "protocol": 1, "executor_id": "scripted", "label": "", "software": "scripted/1"}
        self._socket.send(json.dumps({**hello, "max_concurrency": 4}))
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        try:
            for text in self._socket:
                frame = json.loads(text)
                self.frames.append(frame)
                if frame["type"] == "ping":
                    self._socket.send(json.dumps({"type": "pong", "nonce": frame["nonce"]}))
                elif frame["type"] == "request" and self._answer is not None:
                    for reply in self._answer(frame):
                        self._socket.send(json.dumps({**reply, "id": frame["id"]}))
        except ConnectionClosed:
            pass

    def kinds(self) -> list[str]:
        return [frame["type"] for frame in self.frames]

    def close(self) -> None:
        self._socket.close()
