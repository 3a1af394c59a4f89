"""How much using a 1 GiB stored file costs the gateway's memory: its copy onto an account, through the executor.

    .venv/bin/python bench/bench_replication_memory.py [--size 1024]

Starts a throw-away embedded install (SQLite, files in a folder), the
stand-in for Google (``python -m executors.standin``, which hashes uploaded
bytes and keeps none), one Daphne gateway and one headless executor
(``python -m executors.agent``) connected to it. A file of ``--size`` MiB is
written straight into the gateway's storage and recorded as the member's
ACTIVE file, as an upload leaves it; then one ``generateContent`` call names
it (``fileData.fileUri: files/{id}``), so the gateway copies it to the
executor's account in 8 MiB chunks (``resources.replication``) before the
call is relayed. The gateway's VmRSS is sampled every 50 ms during that call;
the benchmark prints the gateway's RSS before, its peak growth (also checked
against the kernel's ``VmHWM``), the executor's peak, and the call's time.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_upload_memory import chunk_of, memory, reset_peak  # noqa: E402
from tests.e2e.harness import PYTHON, Deployment, Process, free_port, wait_until  # noqa: E402

MIB = 1024 * 1024
MODEL = "gemini-2.5-flash"
SAMPLE_SECONDS = 0.05

STORE_FILE = """
import datetime
from django.contrib.auth import get_user_model
from django.utils import timezone
from accounts.models import ProxyKey
from resources.models import StoredFile
member = get_user_model().objects.get(username="bench")
stored = StoredFile.objects.create(
    owner=member, key=ProxyKey.objects.filter(user=member).first(), mime_type="application/octet-stream",
    size_bytes=SIZE, sha256=SHA256, storage_name=NAME, state="ACTIVE",
    expires_at=timezone.now() + datetime.timedelta(hours=48))
print(stored.id)
"""

REPLICATED = (
    "from accounts.models import UsageRecord; "
    "print(list(UsageRecord.objects.filter(method='files.replicate', outcome='ok')"
    ".values_list('request_bytes', flat=True)))"
)


class RssSampler:
    """VmRSS of one process every 50 ms, in a thread: the peak and the number of samples."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, memory(self.pid)["VmRSS"])
            self.samples += 1
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def store_file(install: Deployment, size: int) -> str:
    """A file of ``size`` bytes in the gateway's storage, ACTIVE and the member's; its id."""
    folder = install.tmp / "files" / "stored"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with (folder / "bench.bin").open("wb") as out:
        offset, index = 0, 0
        while offset < size:
            piece = chunk_of(index, min(8 * MIB, size - offset))
            digest.update(piece)
            out.write(piece)
            offset += len(piece)
            index += 1
    script = (
        STORE_FILE.replace("SIZE", str(size))
        .replace("SHA256", repr(digest.hexdigest()))
        .replace("NAME", repr("stored/bench.bin"))
    )
    return install.manage("shell", "-c", script)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def generate(port: int, key: str, parts: list[dict]) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    body = json.dumps({"contents": [{"role": "user", "parts": parts}]}).encode()
    connection.request(
        "POST",
        f"/v1beta/models/{MODEL}:generateContent",
        body=body,
        headers={"x-goog-api-key": key, "content-type": "application/json"},
    )
    answer = connection.getresponse()
    data = answer.read()
    if answer.status != 200:
        raise SystemExit(f"generateContent: {answer.status} {data[:500]!r}")
    return json.loads(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024, help="the stored file's size in MiB (default 1024)")
    options = parser.parse_args()
    size = options.size * MIB

    with tempfile.TemporaryDirectory(prefix="gemproxy-bench-") as tmp:
        install = Deployment(
            Path(tmp), {"GEMPROXY_FILES_SWEEP_INTERVAL": "0", "GEMPROXY_DISPATCH_WAIT": "30", "LOG_LEVEL": "WARNING"}
        )
        try:
            upstream_port = free_port()
            install.processes.append(
                Process(
                    "standin", [PYTHON, "-m", "executors.standin", "--port", str(upstream_port)], install.env, Path(tmp)
                )
            )
            key = install.proxy_key("bench")
            token = install.executor_token("bench@example.com")
            file_id = store_file(install, size)
            gateway = install.start_gateway("bench-gateway")
            wait_until(lambda: listening(upstream_port), what="the stand-in")
            agent = install.start_agent(gateway, token, f"http://127.0.0.1:{upstream_port}", name="bench-agent")
            gateway.wait_for_executors(1)
            pid = gateway.process.popen.pid
            generate(gateway.port, key, [{"text": "warm up"}])  # imports, database, auth, the relay path
            before = memory(pid)
            reset_peak(pid)

            with RssSampler(pid) as gateway_rss, RssSampler(agent.popen.pid) as agent_rss:
                started = time.monotonic()
                answer = generate(
                    gateway.port,
                    key,
                    [
                        {"fileData": {"fileUri": f"files/{file_id}", "mimeType": "application/octet-stream"}},
                        {"text": "what is in it?"},
                    ],
                )
                seconds = time.monotonic() - started
            after = memory(pid)
            replicated = install.manage("shell", "-c", REPLICATED)
        finally:
            install.stop()

    assert replicated == str([size]), f"the copy was not recorded as one replication of {size} bytes: {replicated}"
    assert answer.get("candidates"), answer
    base = before["VmRSS"]
    peak = max(gateway_rss.peak, after["VmHWM"])
    print(f"file: {options.size} MiB, copied to one account through one executor in 8 MiB chunks")
    print(f"gateway RSS before: {base / MIB:.1f} MiB")
    print(
        f"call:    {seconds:.1f} s ({size / MIB / seconds:.0f} MiB/s), "
        f"gateway peak RSS {peak / MIB:.1f} MiB (+{(peak - base) / MIB:.1f}; "
        f"sampled +{(gateway_rss.peak - base) / MIB:.1f} over {gateway_rss.samples} samples, "
        f"VmHWM +{(after['VmHWM'] - base) / MIB:.1f}), after {after['VmRSS'] / MIB:.1f} MiB"
    )
    print(f"executor peak RSS: {agent_rss.peak / MIB:.1f} MiB")


if __name__ == "__main__":
    main()
