"""Two Daphne processes of one distributed install (Redis, PostgreSQL) share their metrics: a scrape of
either counts the calls made through both, by outcome, as the SDK saw them. /readyz follows the executors;
the request id travels from the client to the executor's log and back; with LOG_FORMAT=json every line
the gateways write is one JSON object."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from google import genai
from google.genai import errors
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, Gateway, Process, ThreadedUpstream, wait_until

METRICS_TOKEN = "metrics-bearer-for-e2e"
MODEL = "gemini-2.5-flash"


class Install:
    def __init__(self, deployment: Deployment, a: Gateway, b: Gateway, agent: Process, key: str) -> None:
        self.deployment, self.a, self.b, self.agent, self.key = deployment, a, b, agent, key


@pytest.fixture(scope="module")
def install(distributed: Deployment, upstream: ThreadedUpstream) -> Install:
    token = distributed.executor_token("metrics@example.com")
    key = distributed.proxy_key("mia")
    settings = {"LOG_FORMAT": "json", "GEMPROXY_METRICS_TOKEN": METRICS_TOKEN}
    gateway_a = distributed.start_gateway("gateway-a", **settings)
    gateway_b = distributed.start_gateway("gateway-b", **settings)
    # At DEBUG the agent logs a line for every call, successful ones too (at INFO only the others).
    agent = distributed.start_agent(gateway_a, token, upstream.url, name="agent-on-a", LOG_LEVEL="DEBUG")
    gateway_a.wait_for_executors(1)
    gateway_b.wait_for_executors(1)
    return Install(distributed, gateway_a, gateway_b, agent, key)


def get(url: str, token: str | None = METRICS_TOKEN) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def scrape(gateway: Gateway) -> dict[tuple[str, tuple], float]:
    status, body = get(f"{gateway.url}/metrics")
    assert status == 200, body
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def calls(scraped: dict, outcome: str, method: str = "generateContent") -> float:
    return scraped.get(("gemproxy_requests_total", (("method", method), ("outcome", outcome))), 0.0)


def status_of(client: genai.Client, text: str) -> int:
    try:
        client.models.generate_content(model=MODEL, contents=text)
    except errors.APIError as error:
        return error.code
    return 200


def test_a_scrape_of_either_process_counts_the_calls_of_both(install: Install) -> None:
    limited = install.deployment.manage("create_proxy_key", "--user", "lim", "--rpd", "2")
    before = scrape(install.a)

    statuses = [
        status_of(sdk_client(gateway, install.key), f"ok {n}")
        for n, gateway in enumerate([install.a] * 3 + [install.b] * 2)
    ]
    statuses.append(status_of(sdk_client(install.b, install.key), "fail #error=400"))
    statuses += [
        status_of(sdk_client(gateway, limited), f"limited {n}") for n, gateway in enumerate([install.a, install.b] * 2)
    ]

    assert statuses == [200] * 5 + [400] + [200, 200, 429, 429]
    scraped_a, scraped_b = scrape(install.a), scrape(install.b)
    for scraped in (scraped_a, scraped_b):
        assert calls(scraped, "ok") - calls(before, "ok") == 7
        assert calls(scraped, "upstream_error") - calls(before, "upstream_error") == 1
        assert calls(scraped, "rejected_quota") - calls(before, "rejected_quota") == 2
        duration = ("gemproxy_request_duration_seconds_count", (("method", "generateContent"),))
        assert scraped[duration] - before.get(duration, 0) == 10
        prompt = ("gemproxy_tokens_total", (("kind", "prompt"), ("model", MODEL)))
        assert scraped[prompt] > before.get(prompt, 0)
        assert scraped[("gemproxy_executors_connected", ())] == 1
        assert scraped[("gemproxy_registry_up", ())] == 1


def test_metrics_want_the_bearer_token(install: Install) -> None:
    assert get(f"{install.b.url}/metrics", token=None)[0] == 401
    assert get(f"{install.b.url}/metrics", token="wrong")[0] == 401


def test_the_request_id_reaches_the_executors_log_and_comes_back(install: Install) -> None:
    client = genai.Client(
        api_key=install.key, http_options={"base_url": install.b.url, "headers": {"x-request-id": "e2e-trace-5150"}}
    )

    response = client.models.generate_content(model=MODEL, contents="traced across processes")

    assert response.sdk_http_response is not None and response.sdk_http_response.headers is not None
    assert response.sdk_http_response.headers["x-request-id"] == "e2e-trace-5150"
    wait_until(lambda: "request_id=e2e-trace-5150" in install.agent.log(), 5, "the agent's line for the call")
    [line] = [json.loads(line) for line in install.b.process.log().splitlines() if "e2e-trace-5150" in line]
    assert (line["logger"], line["request_id"], line["outcome"]) == ("gemproxy.calls", "e2e-trace-5150", "ok")


def test_every_line_a_gateway_writes_is_one_json_object(install: Install) -> None:
    status_of(sdk_client(install.a, install.key), "one more for the logs")

    for gateway in (install.a, install.b):
        lines = gateway.process.log().splitlines()
        assert lines
        for line in lines:
            entry = json.loads(line)
            assert {"time", "level", "logger", "message"} <= set(entry), line
        assert install.key not in gateway.process.log()


def test_both_are_ready_and_neither_once_the_only_executor_is_gone(install: Install) -> None:
    assert [get(f"{gateway.url}/readyz", token=None)[0] for gateway in (install.a, install.b)] == [200, 200]

    install.agent.stop()

    wait_until(lambda: get(f"{install.b.url}/readyz", token=None)[0] == 503, 15, "process B not ready")
    status, body = get(f"{install.a.url}/readyz", token=None)
    assert status == 503
    assert json.loads(body)["failed"] == ["executors"]
    assert scrape(install.b)[("gemproxy_executors_connected", ())] == 0
