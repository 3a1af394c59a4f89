"""How much a 1 GiB file costs the gateway's memory: a resumable upload in 8 MiB chunks, then its download.

    .venv/bin/python bench/bench_upload_memory.py [--mib 1024] [--chunk-mib 8]

Starts one Daphne gateway of a throw-away embedded install (SQLite, files in a
folder), uploads the file over raw HTTP exactly as the SDKs do (start, then
``upload`` chunks and a last ``upload, finalize``), downloads it with
``files/{id}:download?alt=media``, and prints the gateway's resident memory:
before, its peak during the upload, its peak during the download (``VmHWM``,
reset between phases through ``/proc/PID/clear_refs``), and the time of each
phase. The bytes are generated and hashed on the fly: the benchmark itself
holds one chunk at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import Deployment  # noqa: E402

MIB = 1024 * 1024


def memory(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def reset_peak(pid: int) -> None:
    # Writing 5 resets VmHWM to the current RSS (Linux 4.0+).
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def chunk_of(index: int, size: int) -> bytes:
    seed = hashlib.sha256(index.to_bytes(8, "big")).digest()
    return (seed * (size // len(seed) + 1))[:size]


def post(connection: http.client.HTTPConnection, path: str, headers: dict[str, str], body: bytes):
    connection.request("POST", path, body=body, headers=headers)
    answer = connection.getresponse()
    data = answer.read()
    if answer.status != 200:
        raise SystemExit(f"{path}: {answer.status} {data[:300]!r}")
    return answer, data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--chunk-mib", type=int, default=8)
    options = parser.parse_args()
    size, chunk = options.mib * MIB, options.chunk_mib * MIB

    with tempfile.TemporaryDirectory(prefix="gemproxy-bench-") as tmp:
        install = Deployment(Path(tmp), {"GEMPROXY_FILES_SWEEP_INTERVAL": "0", "LOG_LEVEL": "WARNING"})
        try:
            key = install.proxy_key("bench")
            gateway = install.start_gateway("bench-gateway")
            pid = gateway.process.popen.pid
            connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=600)
            connection.request("GET", "/v1beta/files", headers={"x-goog-api-key": key})
            connection.getresponse().read()  # warm: imports, database, auth
            before = memory(pid)
            reset_peak(pid)

            started = time.monotonic()
            answer, _ = post(
                connection,
                "/upload/v1beta/files",
                {
                    "x-goog-api-key": key,
                    "x-goog-upload-protocol": "resumable",
                    "x-goog-upload-command": "start",
                    "x-goog-upload-header-content-length": str(size),
                    "x-goog-upload-header-content-type": "application/octet-stream",
                    "content-type": "application/json",
                },
                json.dumps({"file": {"display_name": "bench"}}).encode(),
            )
            url = urlsplit(answer.getheader("x-goog-upload-url"))
            digest = hashlib.sha256()
            offset, index = 0, 0
            while offset < size:
                piece = chunk_of(index, min(chunk, size - offset))
                digest.update(piece)
                last = offset + len(piece) >= size
                headers = {
                    "x-goog-upload-command": "upload, finalize" if last else "upload",
                    "x-goog-upload-offset": str(offset),
                }
                _, body = post(connection, f"{url.path}?{url.query}", headers, piece)
                offset += len(piece)
                index += 1
            file = json.loads(body)["file"]
            upload_seconds = time.monotonic() - started
            after_upload = memory(pid)
            reset_peak(pid)

            started = time.monotonic()
            connection.request("GET", f"/v1beta/{file['name']}:download?alt=media", headers={"x-goog-api-key": key})
            download = connection.getresponse()
            check, received = hashlib.sha256(), 0
            while piece := download.read(MIB):
                check.update(piece)
                received += len(piece)
            download_seconds = time.monotonic() - started
            after_download = memory(pid)
        finally:
            install.stop()

    assert file["sizeBytes"] == str(size) and received == size
    assert check.hexdigest() == digest.hexdigest(), "the download differs from the upload"
    base = before["VmRSS"]
    print(f"file: {options.mib} MiB in {options.chunk_mib} MiB chunks")
    print(f"gateway RSS before: {base / MIB:.1f} MiB")
    print(
        f"upload:   {upload_seconds:.1f} s ({size / MIB / upload_seconds:.0f} MiB/s), "
        f"peak RSS {after_upload['VmHWM'] / MIB:.1f} MiB (+{(after_upload['VmHWM'] - base) / MIB:.1f}), "
        f"after {after_upload['VmRSS'] / MIB:.1f} MiB"
    )
    print(
        f"download: {download_seconds:.1f} s ({size / MIB / download_seconds:.0f} MiB/s), "
        f"peak RSS {after_download['VmHWM'] / MIB:.1f} MiB (+{(after_download['VmHWM'] - base) / MIB:.1f}), "
        f"after {after_download['VmRSS'] / MIB:.1f} MiB"
    )


if __name__ == "__main__":
    main()
