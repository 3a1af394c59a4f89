"""Whatever a client sends about batches, the answer is Google's error shape, never a 5xx of gemproxy's own.

Bodies and names come from Hypothesis; the calls go through the real ASGI app to
the fake upstream (on its own thread) as one connected account (``AccountsDispatcher``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executors.models import ExecutorAccount
from resources import generated, upstream
from tests.api_doubles import asgi_call
from tests.e2e.harness import ThreadedUpstream
from tests.test_batches_api import CREATE, AccountsDispatcher, connect

pytestmark = pytest.mark.django_db(transaction=True)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
BATCH_SHAPED = st.fixed_dictionaries(
    {
        "batch": st.fixed_dictionaries(
            {},
            optional={
                "displayName": JSON_VALUES,
                "inputConfig": st.fixed_dictionaries(
                    {},
                    optional={
                        "fileName": JSON_VALUES | st.text(max_size=30).map(lambda t: "files/" + t),
                        "requests": st.fixed_dictionaries(
                            {}, optional={"requests": st.lists(JSON_VALUES | st.just({"request": {}}), max_size=3)}
                        ),
                    },
                ),
            },
        )
    }
)


@pytest.fixture(scope="module")
def threaded_fake() -> Iterator[ThreadedUpstream]:
    fake = ThreadedUpstream(batch_delays=(0.2, 0.2))
    yield fake
    fake.stop()


@pytest.fixture
def headers(make_key, threaded_fake, monkeypatch) -> dict[str, str]:
    """A member's key, with one executor account connected and calls served by the fake upstream."""
    account = ExecutorAccount(label="ana@example.com")
    account.set_new_token()
    account.save()
    double = AccountsDispatcher(threaded_fake, {account.pk: account.label})
    monkeypatch.setattr(upstream, "call", double.call)
    monkeypatch.setattr(generated, "Exchange", double.exchange)
    async_to_sync(connect)(account.pk)
    _, secret = make_key()
    return {"x-goog-api-key": secret, "content-type": "application/json"}


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def assert_google_shaped(answer) -> None:
    assert answer.status < 500 or answer.status == 503, answer.body[:300]
    if answer.status >= 400:
        error = json.loads(answer.body)["error"]
        assert error["code"] == answer.status
        assert isinstance(error["message"], str) and error["status"].isupper()


def test_hostile_create_bodies_get_googles_errors(headers):
    @SETTINGS
    @given(body=st.one_of(BATCH_SHAPED.map(json.dumps), JSON_VALUES.map(json.dumps), st.binary(max_size=200)))
    def check(body) -> None:
        payload = body if isinstance(body, bytes) else body.encode()
        assert_google_shaped(async_to_sync(asgi_call)("POST", CREATE, headers=headers, body=payload))

    check()


def test_hostile_batch_names_get_googles_errors(headers):
    @SETTINGS
    @given(
        name=st.text(min_size=1, max_size=60),
        method=st.sampled_from(["GET", "DELETE", "POST", "PUT", "PATCH"]),
        suffix=st.sampled_from(["", ":cancel", ":foo", "/operations/x"]),
    )
    def check(name: str, method: str, suffix: str) -> None:
        path = f"/v1beta/batches/{quote(name, safe='')}{suffix}"
        body = b"{}" if method != "GET" else b""
        answer = async_to_sync(asgi_call)(method, path, headers=headers, body=body)
        assert_google_shaped(answer)
        assert answer.status != 200

    check()
