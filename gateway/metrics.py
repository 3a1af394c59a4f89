"""What the gateway counts, and ``GET /metrics`` in Prometheus' text format.

Counted per call where the call ends (``gateway.relay``): calls by method and
outcome, their duration and time to first byte, tokens by model and kind, and
errors of the services behind the call path. Read at scrape time: the executors
connected and their slots by account, the cooldowns in force (from the registry,
which every process shares in a distributed install) and the usage records not
yet written (this process's; a gauge summed over live processes).

Several processes on one machine share ``GEMPROXY_METRICS_DIR`` (prometheus-client's
multiprocess mode, set up by the settings, ``gemproxy_site.metrics_dir``), so a
scrape of any one of them counts them all. Labels stay few: no key, user or
executor id, and model or method names beyond a small set count as "other".
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from accounts import usage
from executors.registry import get_registry
from gemproxy_site import metrics_dir

log = logging.getLogger(__name__)

OTHER = "other"
# Names a label may keep; more distinct ones than this in one process count as "other".
MAX_MODELS = 32
MAX_METHODS = 32
_MODEL = re.compile(r"(gemini|gemma|learnlm|imagen|veo|lyria|text-embedding|embedding|aqa)[a-z0-9.-]{0,60}")
_METHOD = re.compile(r"[A-Za-z][A-Za-z.]{0,39}")
_OUTCOME = re.compile(r"[a-z][a-z_]{0,31}")
TOKEN_KINDS = ("prompt", "candidates", "thoughts", "cached")

REQUESTS = Counter("gemproxy_requests", "Calls answered, by API method and outcome.", ["method", "outcome"])
DURATION = Histogram(
    "gemproxy_request_duration_seconds",
    "Seconds from a call's arrival to its last byte, by API method.",
    ["method"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 900),
)
FIRST_BYTE = Histogram(
    "gemproxy_time_to_first_byte_seconds",
    "Seconds from a call's arrival to the executor's first answer, by API method.",
    ["method"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
)
TOKENS = Counter("gemproxy_tokens", "Tokens the upstream reported, by model and kind.", ["model", "kind"])
BACKEND_ERRORS = Counter(
    "gemproxy_backend_errors",
    "Calls a backing service failed: the channel layer and registry, the limit counters, the database.",
    ["component"],
)
USAGE_QUEUE = Gauge(
    "gemproxy_usage_queue_depth",
    "Usage records waiting to be written to the database (queued or held back).",
    multiprocess_mode="livesum",
)

BACKEND_COMPONENTS = ("channel_layer", "counters", "database")


class _Names:
    """A label's values: those that look right, up to a bound; "other" beyond it."""

    def __init__(self, pattern: re.Pattern[str], limit: int) -> None:
        self.pattern, self.limit = pattern, limit
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, name: str) -> str:
        if name in self.seen:
            return name
        if not self.pattern.fullmatch(name):
            return OTHER
        with self.lock:
            if len(self.seen) >= self.limit:
                return OTHER
            self.seen.add(name)
        return name


model_label = _Names(_MODEL, MAX_MODELS)
method_label = _Names(_METHOD, MAX_METHODS)
# Outcomes are the gateway's own words (accounts.usage.OUTCOMES and the like): bounded all the same.
outcome_label = _Names(_OUTCOME, 32)


# Children by metric and label values: ``labels()`` costs microseconds per call on the
# relay path, and label values are bounded (above), so the children of a process are too.
_children: dict[tuple[str, tuple[str, ...]], Any] = {}


def _child(metric: Counter | Histogram, *values: str) -> Any:
    key = (metric._name, values)
    child = _children.get(key)
    if child is None:
        child = _children.setdefault(key, metric.labels(*values))
    return child


def count_call(
    method: str,
    outcome: str,
    seconds: float,
    first_byte_seconds: float | None,
    model: str,
    tokens: dict[str, int],
) -> None:
    """One answered call, counted once, where it ends."""
    method = method_label(method)
    _child(REQUESTS, method, outcome_label(outcome)).inc()
    _child(DURATION, method).observe(seconds)
    if first_byte_seconds is not None:
        _child(FIRST_BYTE, method).observe(first_byte_seconds)
    model = model_label(model)
    for kind, count in tokens.items():
        if count > 0:
            _child(TOKENS, model, kind).inc(count)
    _sampler.start()


def count_backend_error(component: str) -> None:
    _child(BACKEND_ERRORS, component).inc()


class _UsageQueueSampler:
    """Keeps this process's usage-queue gauge fresh, also while it serves no call.

    In multiprocess mode the scraped process cannot read the others' queues, so
    each process writes its own every few seconds.
    """

    INTERVAL = 5.0

    def __init__(self) -> None:
        self._pid: int | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="metrics-usage-queue", daemon=True).start()

    def _run(self) -> None:
        while True:
            sample_usage_queue()
            time.sleep(self.INTERVAL)


_sampler = _UsageQueueSampler()


def sample_usage_queue() -> None:
    USAGE_QUEUE.set(usage.depth())


# What the registry says, read when Prometheus scrapes


class _Snapshot(Collector):
    """Gauges read from the registry once per scrape: the same answer from every process."""

    def __init__(self, executors: list[dict] | None, cooldowns: int | None) -> None:
        self.executors, self.cooldowns = executors, cooldowns

    def collect(self):
        up = GaugeMetricFamily(
            "gemproxy_registry_up", "1 when this scrape could read the registry of executors, else 0."
        )
        up.add_metric([], 0 if self.executors is None else 1)
        yield up
        if self.executors is None:
            return
        connected = GaugeMetricFamily("gemproxy_executors_connected", "Executors connected and live.")
        connected.add_metric([], len(self.executors))
        yield connected
        slots = GaugeMetricFamily(
            "gemproxy_executor_slots", "Calls the live executors take at once, by account.", labels=["account"]
        )
        busy = GaugeMetricFamily(
            "gemproxy_executor_busy_slots", "Calls in flight on the live executors, by account.", labels=["account"]
        )
        by_account: dict[str, list[int]] = {}
        for row in self.executors:
            totals = by_account.setdefault(str(row["account_label"]), [0, 0])
            totals[0] += int(row["max_concurrency"])
            totals[1] += int(row["in_flight"])
        for account, (total, in_flight) in sorted(by_account.items()):
            slots.add_metric([account], total)
            busy.add_metric([account], in_flight)
        yield slots
        yield busy
        cooling = GaugeMetricFamily(
            "gemproxy_cooldowns", "Cooldowns in force: (account, model) pairs left out after an upstream 429."
        )
        cooling.add_metric([], self.cooldowns or 0)
        yield cooling


async def _read_registry() -> tuple[list[dict] | None, int | None]:
    registry = get_registry()
    try:
        async with asyncio.timeout(settings.GEMPROXY_READYZ_TIMEOUT):
            return await registry.snapshot(), len(await registry.cooldowns())
    except Exception as error:  # a scrape during an outage still answers, with gemproxy_registry_up 0
        log.warning("metrics: the registry could not be read: %r", error)
        return None, None


def counted_metrics() -> bytes:
    """The counters and histograms: of every live process sharing the directory, else of this one."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir.remove_dead_live_gauges(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def _authorised(request: HttpRequest) -> bool:
    expected = settings.GEMPROXY_METRICS_TOKEN
    if not expected:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


async def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return HttpResponse("Only GET.\n", status=405, content_type="text/plain", headers={"Allow": "GET, HEAD"})
    if not _authorised(request):
        return HttpResponse(
            "A bearer token is required.\n",
            status=401,
            content_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    sample_usage_queue()
    executors, cooldowns = await _read_registry()
    live = CollectorRegistry()
    live.register(_Snapshot(executors, cooldowns))
    body = counted_metrics() + generate_latest(live)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
