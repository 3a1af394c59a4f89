"""Free-tier quotas through a real gateway, seen by the official SDK: two accounts, a tiny quota each.

While one account is out, calls move to the other invisibly; when both are out the SDK gets Google's 429
at once, with Retry-After and RetryInfo; after that delay calls succeed again. /healthz shows the
cooldowns and the usage records name the accounts that refused.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest
from google.genai import errors

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, wait_until

MODEL = "gemini-2.5-flash"
ANA, BOB = "quota-ana@example.com", "quota-bob@example.com"
# Generate calls per model in each window, per upstream key (the harness gives agent N the key
# "upstream-key-of-N"): ana is out after one call, bob after three. The embedded install's agents
# are "quota-*", the distributed install's "shared-*".
QUOTAS = {
    f"upstream-key-of-{install}-{name}": calls
    for install in ("quota", "shared")
    for name, calls in (("ana", 1), ("bob", 3))
}
WINDOW = 4.0


@pytest.fixture(scope="module")
def free_tier() -> Iterator[ThreadedUpstream]:
    fake = ThreadedUpstream(quotas=QUOTAS, quota_window=WINDOW)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(deployment: Deployment, free_tier: ThreadedUpstream) -> Gateway:
    gateway = deployment.start_gateway("gw-free-tier")
    for label in (ANA, BOB):
        name = f"quota-{label.split('@')[0].removeprefix('quota-')}"
        deployment.start_agent(gateway, deployment.executor_token(label), free_tier.url, name=name)
    gateway.wait_for_executors(2)
    return gateway


@pytest.fixture(scope="module")
def two_gateways(distributed: Deployment, free_tier: ThreadedUpstream) -> tuple[Gateway, Gateway]:
    """Two processes sharing the Redis registry, an account's agent on each."""
    gateways = (distributed.start_gateway("gw-quota-a"), distributed.start_gateway("gw-quota-b"))
    for gateway, label in zip(gateways, (ANA, BOB), strict=True):
        name = f"shared-{label.split('@')[0].removeprefix('quota-')}"
        distributed.start_agent(gateway, distributed.executor_token(label), free_tier.url, name=name)
    gateways[0].wait_for_executors(2)
    return gateways


def refusals(upstream: ThreadedUpstream, install: str) -> list[str]:
    prefix = f"upstream-key-of-{install}-"
    return [
        r.api_key.removeprefix(prefix)
        for r in upstream.requests
        if r.response_status == 429 and r.api_key.startswith(prefix)
    ]


def usage_rows(deployment: Deployment) -> list[dict]:
    with sqlite3.connect(deployment.tmp / "gemproxy.sqlite3") as database:
        database.row_factory = sqlite3.Row
        query = "SELECT status_code, attempts, executor_account, refused_by FROM accounts_usagerecord ORDER BY id"
        return [dict(row) for row in database.execute(query)]


def test_quota_refusals_fail_over_then_come_back_at_once_as_googles_429_then_pass_after_the_delay(
    deployment: Deployment, gateway: Gateway, free_tier: ThreadedUpstream, proxy_key: str
) -> None:
    through_free_tier_quotas(gateway, free_tier, proxy_key, "quota")

    wait_until(lambda: len(usage_rows(deployment)) >= 8, timeout=10, what="the usage records")
    rows = usage_rows(deployment)[-8:]
    assert {"status_code": 200, "attempts": 2, "executor_account": BOB, "refused_by": ANA} in rows
    assert rows[4] == {"status_code": 429, "attempts": 1, "executor_account": BOB, "refused_by": BOB}
    assert rows[5] == {"status_code": 429, "attempts": 0, "executor_account": "", "refused_by": ""}
    assert rows[7]["status_code"] == 200


def test_the_gateways_sharing_redis_know_each_others_cooldowns(
    distributed: Deployment, two_gateways: tuple[Gateway, Gateway], free_tier: ThreadedUpstream
) -> None:
    calling, observing = two_gateways
    through_free_tier_quotas(calling, free_tier, distributed.proxy_key("dora"), "shared", observer=observing)


def through_free_tier_quotas(
    gateway: Gateway, free_tier: ThreadedUpstream, proxy_key: str, install: str, observer: Gateway | None = None
) -> None:
    """The scenario: both accounts fresh, used up one after the other, then one back; ``observer``'s /healthz."""
    client = sdk_client(gateway, proxy_key)
    observer = observer or gateway
    # Four calls: ana serves one and refuses the next, which bob serves; bob serves three.
    for n in range(4):
        assert client.models.generate_content(model=MODEL, contents=f"call {n}").text == f"echo: call {n}"
    assert refusals(free_tier, install) == ["ana"]
    assert [(row["account"], row["model"]) for row in observer.health()["cooldowns"]] == [(ANA, MODEL)]

    # Bob refuses too: the call ends with Google's 429, as does the next one, which no account sees.
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model=MODEL, contents="bob refuses")
    upstream_calls = len(free_tier.requests)
    began = time.monotonic()
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model=MODEL, contents="everyone is out")
    elapsed = time.monotonic() - began

    assert elapsed < 0.5
    assert len(free_tier.requests) == upstream_calls
    error = raised.value.details["error"]
    assert (raised.value.code, error["status"]) == (429, "RESOURCE_EXHAUSTED")
    retry_after = int(raised.value.response.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW
    assert error["message"].startswith("You exceeded your current quota")
    assert f"model: {MODEL}" in error["message"] and "Please retry in " in error["message"]
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"}
    assert retry_info in error["details"]
    quota_failure = next(d for d in error["details"] if d["@type"].endswith("QuotaFailure"))
    assert quota_failure["violations"][0]["quotaDimensions"] == {"model": MODEL}
    began = time.monotonic()
    with pytest.raises(errors.ClientError) as streamed:
        list(client.models.generate_content_stream(model=MODEL, contents="streamed, everyone is out"))
    assert (streamed.value.code, time.monotonic() - began < 0.5) == (429, True)
    cooling = observer.health()["cooldowns"]
    assert sorted(row["account"] for row in cooling) == [ANA, BOB]
    assert all(1 <= row["seconds_left"] <= WINDOW for row in cooling)

    time.sleep(retry_after)
    assert client.models.generate_content(model=MODEL, contents="back again").text == "echo: back again"
