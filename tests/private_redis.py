"""A throwaway redis-server on a free port, for tests that kill, restart or freeze Redis.

The machine's shared Redis (port 6379) serves other tests and CI: never that one.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import redis

from tests.e2e.harness import free_port, wait_until


class PrivateRedis:
    """A throwaway redis-server on its own port, killed and restarted at will."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self._log_path = log_dir / "private-redis.log"
        self._popen: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        with self._log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self.answers, 10, f"redis-server on {self.port}")

    def answers(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2, socket_timeout=0.2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def freeze(self) -> None:
        """Stop answering without closing a connection, as a hung host or a cut network does."""
        assert self._popen is not None
        self._popen.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._popen is not None
        self._popen.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self._popen is not None and self._popen.poll() is None:
            self._popen.send_signal(signal.SIGCONT)  # a frozen one must still die
            self._popen.kill()
            self._popen.wait(10)
