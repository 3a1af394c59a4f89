"""docs/grafana-dashboard.json is valid JSON whose every query uses metrics and labels /metrics exports,
and it shows what an operator looks at: calls by outcome, latency percentiles, tokens, executors, busy
slots, cooldowns, errors and the usage queue."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from executors.registry import ExecutorInfo, get_registry
from gateway import metrics
from tests.api_doubles import asgi_call

pytestmark = pytest.mark.django_db(transaction=True)

DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana-dashboard.json"
METRIC = re.compile(r"\bgemproxy_[a-z_]+")
# "by (a, b)" and label matchers "{a="x"}"
GROUPING = re.compile(r"\bby \(([^)]*)\)")
MATCHER = re.compile(r"\{([^}]*)\}")


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


@pytest.fixture
async def exported() -> dict[str, set[str]]:
    """Every gemproxy sample name /metrics exports once a call has been counted, with its label names."""
    metrics.count_call("generateContent", "ok", 0.3, 0.1, "gemini-2.5-flash", {"prompt": 3})
    metrics.count_backend_error("counters")
    info = ExecutorInfo("c1", "e1", "executor.c1", 1, "ana@example.com", "test/1", 2, time.time())
    await get_registry().register(info, time.time() + 60)
    answer = await asgi_call("GET", "/metrics")
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            if sample.name.startswith("gemproxy_"):
                names.setdefault(sample.name, set()).update(sample.labels)
    return names


def test_the_dashboard_is_valid_json_with_panels_that_query_something() -> None:
    dashboard = json.loads(DASHBOARD.read_text())

    assert dashboard["title"] == "gemproxy"
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


async def test_every_metric_the_dashboard_uses_is_exported(exported) -> None:
    used = {name for expr in expressions() for name in METRIC.findall(expr)}

    assert used
    assert used <= set(exported), used - set(exported)


async def test_every_label_the_dashboard_groups_or_filters_by_exists_on_its_metrics(exported) -> None:
    for expr in expressions():
        labels_of_expr = set().union(*(exported[name] for name in METRIC.findall(expr)))
        grouped = {label.strip() for group in GROUPING.findall(expr) for label in group.split(",") if label.strip()}
        matched = {m.split("=")[0].rstrip("!~").strip() for group in MATCHER.findall(expr) for m in group.split(",")}
        # "instance" is Prometheus' own target label, on every series it scrapes.
        assert grouped | matched <= labels_of_expr | {"instance"}, expr


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    every = "\n".join(expressions())

    assert "by (outcome) (rate(gemproxy_requests_total" in every
    assert re.search(
        r"histogram_quantile\(0\.99, sum by \(le\) \(rate\(gemproxy_request_duration_seconds_bucket", every
    )
    assert "gemproxy_tokens_total" in every
    for gauge in ("gemproxy_executors_connected", "gemproxy_executor_busy_slots", "gemproxy_cooldowns"):
        assert gauge in every
    assert "gemproxy_backend_errors_total" in every
    assert "gemproxy_usage_queue_depth" in every


def test_registry_gauges_are_not_summed_over_processes() -> None:
    """Every process reports the same shared registry: summing would count each executor once per process."""
    for expr in expressions():
        for gauge in (
            "gemproxy_executors_connected",
            "gemproxy_executor_slots",
            "gemproxy_executor_busy_slots",
            "gemproxy_cooldowns",
        ):
            assert not re.search(rf"sum(?: by \([^)]*\))? \({gauge}\b", expr), expr
