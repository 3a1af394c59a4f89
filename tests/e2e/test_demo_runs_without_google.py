"""The demo (``python -m gemproxy_site.demo``, what ``scripts/demo`` runs), used as a newcomer would.

It runs as a real process tree: the stand-in for Gemini, a Daphne gateway and
a headless executor. The calls it prints are run exactly as printed.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.harness import PYTHON, ROOT, free_port

# A real install's settings in the newcomer's shell: the demo must use none of them.
REAL_INSTALL = {
    "DATABASE_URL": "postgres://real-install@127.0.0.1:1/production",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "SECRET_KEY": "the-real-install-secret-key",
}


@dataclass
class RunningDemo:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def read_until(self, marker: str, timeout: float = 90.0) -> list[str]:
        while not any(marker in line for line in self.lines):
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {marker!r} within {timeout}s; output so far: {self.lines}") from None
            if line is None:
                raise AssertionError(f"the demo ended (status {self.process.wait()}) with: {self.lines}")
            self.lines.append(line)
        return self.lines

    def rest_of_output(self) -> str:
        while (line := self._queue.get(timeout=30)) is not None:
            self.lines.append(line)
        return "\n".join(self.lines)


def demo_command(port: int, data_dir: Path) -> list[str]:
    return [PYTHON, "-m", "gemproxy_site.demo", "--port", str(port), "--data-dir", str(data_dir)]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[RunningDemo, Path]]:
    data_dir = tmp_path / "demo"
    process = subprocess.Popen(
        demo_command(free_port(), data_dir),
        cwd=ROOT,
        env={**os.environ, **REAL_INSTALL},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = RunningDemo(process)
    children: set[int] = set()
    try:
        running.read_until("Press Ctrl-C")
        children = descendants(process.pid)
        yield running, data_dir
    finally:
        # A failed test must not leave the demo's processes behind either.
        for pid in {*children, process.pid}:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        process.wait(10)


def test_the_printed_curl_line_gets_a_gemini_answer_from_the_stand_in(demo):
    running, _ = demo
    curl = next(line for line in running.lines if line.startswith("curl "))
    key = next(line.split()[-1] for line in running.lines if line.startswith("Proxy key:"))
    assert key.startswith("gpk_") and key in curl

    answered = subprocess.run(
        ["bash", "-c", curl + ' -sS -w "\\n%{http_code}"'], capture_output=True, text=True, timeout=30
    )

    body, _, status = answered.stdout.rpartition("\n")
    assert status == "200", answered
    answer = json.loads(body)
    assert answer["candidates"][0]["content"]["parts"][0]["text"] == "echo: Hello"
    assert answer["modelVersion"] == "gemini-2.5-flash (gemproxy stand-in, not Google)"
    assert answer["usageMetadata"]["totalTokenCount"] > 0


def test_the_printed_python_snippet_works_as_printed(demo):
    running, _ = demo
    start = running.lines.index("or with Python (google-genai):") + 1
    snippet = "\n".join(line.strip() for line in running.lines[start : start + 3])

    answered = subprocess.run([PYTHON, "-c", snippet], capture_output=True, text=True, timeout=60)

    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.strip() == "echo: Hello"


def test_the_demo_keeps_to_its_own_install(demo):
    running, data_dir = demo
    output = "\n".join(running.lines)

    assert (data_dir / "gemproxy.sqlite3").stat().st_size > 0
    assert (data_dir / "credentials.json").stat().st_mode & 0o077 == 0
    assert REAL_INSTALL["SECRET_KEY"] not in output
    for child in descendants(running.process.pid):
        assert "production" not in command_line(child)


def test_ctrl_c_stops_the_stand_in_the_gateway_and_the_executor(demo):
    running, _ = demo
    children = descendants(running.process.pid)
    started = {command_line(pid).split(" -m ")[1].split()[0] for pid in children}
    assert started == {"executors.standin", "gemproxy_site.serve", "executors.agent"}

    running.process.send_signal(signal.SIGINT)

    assert running.process.wait(30) == 0
    assert "gemproxy demo stopped." in running.rest_of_output()
    assert [pid for pid in children if alive(pid)] == []


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_busy_port_is_refused_with_a_clear_message(tmp_path, how):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = demo_command(port, tmp_path / "demo")
        env = {**os.environ}
        if how == "environment":
            command = [arg for arg in command if arg not in ("--port", str(port))]
            env["GEMPROXY_PORT"] = str(port)

        refused = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert refused.returncode == 1
    assert f"Port {port} on 127.0.0.1 is already in use" in refused.stderr
    assert "--port" in refused.stderr and "GEMPROXY_PORT" in refused.stderr
    assert not (tmp_path / "demo").exists()  # refused before anything was set up
