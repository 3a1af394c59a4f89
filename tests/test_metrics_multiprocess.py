"""Several gateway processes on one machine share one metrics directory under the data dir: a scrape of
any of them counts the calls of all the live ones, and a process starting removes the files of dead ones."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from gemproxy_site.metrics_dir import remove_dead_processes

ROOT = Path(__file__).resolve().parents[1]

COUNTING_PROCESS = """
import sys, django
django.setup()
from gateway import metrics
for _ in range(int(sys.argv[1])):
    metrics.count_call("generateContent", "ok", 0.2, 0.1, "gemini-2.5-flash", {"prompt": 5})
print("counted", flush=True)
sys.stdin.read()
"""


def a_dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def distributed_env(data_dir: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")}
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "gemproxy_site.settings",
        "GEMPROXY_DATA_DIR": str(data_dir),
        "SECRET_KEY": "test",
        # Only its presence matters: nothing here connects to it.
        "REDIS_URL": "redis://127.0.0.1:6379",
    }


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        process.kill()
        process.wait(10)


def start_counting(data_dir: Path, calls: int, processes: list[subprocess.Popen]) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", COUNTING_PROCESS, str(calls)],
        cwd=ROOT,
        env=distributed_env(data_dir),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    processes.append(process)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "counted"
    return process


def ok_calls(directory: Path) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name == "gemproxy_requests_total" and sample.labels == {
                "method": "generateContent",
                "outcome": "ok",
            }:
                return sample.value
    return 0.0


def test_the_files_of_dead_processes_are_removed_and_the_others_kept(tmp_path: Path) -> None:
    dead, alive = a_dead_pid(), os.getpid()
    for name in (f"counter_{dead}.db", f"histogram_{dead}.db", f"gauge_livesum_{dead}.db"):
        (tmp_path / name).write_bytes(b"")
    for name in (f"counter_{alive}.db", f"gauge_livesum_{alive}.db", "notes.txt", "counter_x.db"):
        (tmp_path / name).write_bytes(b"")

    removed = remove_dead_processes(tmp_path)

    assert sorted(path.name for path in removed) == sorted(
        [f"counter_{dead}.db", f"gauge_livesum_{dead}.db", f"histogram_{dead}.db"]
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [f"counter_{alive}.db", f"gauge_livesum_{alive}.db", "notes.txt", "counter_x.db"]
    )


def test_a_distributed_install_counts_in_a_directory_under_its_data_dir(tmp_path: Path) -> None:
    stale = tmp_path / "metrics" / f"counter_{a_dead_pid()}.db"
    stale.parent.mkdir()
    stale.write_bytes(b"")
    program = "import os, django; django.setup(); print(os.environ['PROMETHEUS_MULTIPROC_DIR'])"

    result = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=distributed_env(tmp_path), capture_output=True, text=True
    )

    assert result.stdout.strip() == str(tmp_path / "metrics"), result.stderr
    assert not stale.exists()


def test_an_embedded_install_counts_in_memory(tmp_path: Path) -> None:
    env = {**distributed_env(tmp_path)}
    del env["REDIS_URL"]
    program = "import os, django; django.setup(); print(os.environ.get('PROMETHEUS_MULTIPROC_DIR', 'none'))"

    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True)

    assert result.stdout.strip() == "none", result.stderr
    assert not (tmp_path / "metrics").exists()


def test_the_calls_of_every_live_process_are_summed_and_a_dead_ones_leave_at_the_next_start(
    tmp_path: Path, processes: list[subprocess.Popen]
) -> None:
    first = start_counting(tmp_path, 3, processes)
    start_counting(tmp_path, 4, processes)

    assert ok_calls(tmp_path / "metrics") == 7

    first.kill()
    first.wait(10)
    start_counting(tmp_path, 1, processes)  # removes the dead process's files as it starts

    assert ok_calls(tmp_path / "metrics") == 5


def test_a_scrape_forgets_the_live_gauges_of_dead_processes_but_keeps_their_counters(tmp_path: Path) -> None:
    from gemproxy_site.metrics_dir import remove_dead_live_gauges

    dead = a_dead_pid()
    for name in (f"gauge_livesum_{dead}.db", f"counter_{dead}.db", f"gauge_livesum_{os.getpid()}.db"):
        (tmp_path / name).write_bytes(b"")

    assert [path.name for path in remove_dead_live_gauges(tmp_path)] == [f"gauge_livesum_{dead}.db"]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [f"counter_{dead}.db", f"gauge_livesum_{os.getpid()}.db"]
    )
