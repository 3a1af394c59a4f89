"""The cachedContents API through the gateway's ASGI app: shapes, paging, isolation, patch, delete, hostile bodies.

The upstream is the real stand-in, reached as two accounts (tests/caches_harness.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async

from accounts import usage
from accounts.models import UsageRecord
from resources.models import CachedContent, Kind, Placement
from tests.api_doubles import asgi_call

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.caches_harness"]

COLLECTION = "/v1beta/cachedContents"
# 1,100 stand-in tokens: above flash's minimum of 1,024.
BIG_TEXT = "A cached paragraph. " * 220


def _create_body(**extra) -> bytes:
    body = {
        "model": "models/gemini-2.5-flash",
        "contents": [{"role": "user", "parts": [{"text": BIG_TEXT}]}],
        "displayName": "handbook",
        "ttl": "600s",
        **extra,
    }
    return json.dumps(body).encode()


@pytest.fixture
async def headers(amake_key) -> dict[str, str]:
    _, secret = await amake_key()
    return {"x-goog-api-key": secret, "content-type": "application/json"}


@pytest.fixture
async def other_headers(amake_key, other_member) -> dict[str, str]:
    _, secret = await amake_key(other_member)
    return {"x-goog-api-key": secret, "content-type": "application/json"}


async def _create(headers, **extra) -> dict:
    answer = await asgi_call("POST", COLLECTION, headers=headers, body=_create_body(**extra))
    assert answer.status == 200, answer.body
    return answer.json()


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@sync_to_async
def _placements() -> list[Placement]:
    return list(Placement.objects.filter(kind=Kind.CACHED_CONTENT))


async def test_create_answers_googles_shape_under_gemproxys_name(accounts, headers) -> None:
    shown = await _create(headers)

    assert list(shown) == ["name", "model", "createTime", "updateTime", "expireTime", "displayName", "usageMetadata"]
    cache_id = shown["name"].removeprefix("cachedContents/")
    assert len(cache_id) == 12 and cache_id.isalnum() and cache_id == cache_id.lower()
    assert shown["model"] == "models/gemini-2.5-flash"
    assert shown["displayName"] == "handbook"
    assert shown["usageMetadata"] == {"totalTokenCount": 1100}
    assert shown["createTime"].endswith("Z") and shown["createTime"] == shown["updateTime"]
    assert (_moment(shown["expireTime"]) - _moment(shown["createTime"])) == timedelta(seconds=600)


async def test_create_keeps_the_request_and_remembers_the_upstream_copy(accounts, headers, standin) -> None:
    shown = await _create(headers)

    (placement,) = await _placements()
    upstream_name = standin.caches.stored()[0].name
    assert placement.upstream_name == upstream_name != shown["name"]
    assert placement.resource_id == shown["name"].removeprefix("cachedContents/")
    assert placement.expires_at == _moment(shown["expireTime"])
    cache = await CachedContent.objects.aget(id=placement.resource_id)
    assert cache.create_request == {"contents": [{"role": "user", "parts": [{"text": BIG_TEXT}]}]}
    assert upstream_name not in json.dumps(shown)


async def test_the_upstreams_refusal_is_the_members_answer_and_nothing_is_kept(accounts, headers) -> None:
    small = _create_body(contents=[{"parts": [{"text": "x"}]}])
    answer = await asgi_call("POST", COLLECTION, headers=headers, body=small)

    assert answer.status == 400
    assert answer.error["status"] == "INVALID_ARGUMENT"
    assert answer.error["message"].startswith("Cached content is too small. total_token_count=")
    assert await CachedContent.objects.acount() == 0
    assert await _placements() == []


async def test_create_is_recorded_as_usage(accounts, headers) -> None:
    await _create(headers)
    await sync_to_async(usage.flush)()

    record = await UsageRecord.objects.aget(method="cachedContents.create")
    assert (record.outcome, record.status_code, record.model) == ("ok", 200, "gemini-2.5-flash")
    assert record.executor_account == f"acct-{accounts.ids['account-a@example.com']}"


async def test_a_refused_create_is_recorded_once(accounts, headers) -> None:
    await asgi_call("POST", COLLECTION, headers=headers, body=b'{"model": 5}')
    await sync_to_async(usage.flush)()

    records = [r async for r in UsageRecord.objects.all()]
    assert [(r.method, r.outcome, r.status_code) for r in records] == [("cachedContents.create", "bad_request", 400)]


async def test_get_answers_the_same_shape(accounts, headers) -> None:
    shown = await _create(headers)

    answer = await asgi_call("GET", f"/v1beta/{shown['name']}", headers=headers)

    assert answer.status == 200
    assert answer.json() == shown


async def test_list_pages_newest_first_with_next_page_token(accounts, headers) -> None:
    names = [(await _create(headers))["name"] for _ in range(3)]

    first = await asgi_call("GET", COLLECTION, query="pageSize=2", headers=headers)
    token = first.json()["nextPageToken"]
    second = await asgi_call("GET", COLLECTION, query=f"pageSize=2&pageToken={token}", headers=headers)

    listed = [c["name"] for c in first.json()["cachedContents"] + second.json()["cachedContents"]]
    assert listed == names[::-1]
    assert "nextPageToken" not in second.json()


async def test_an_empty_list_is_an_empty_object(accounts, headers) -> None:
    answer = await asgi_call("GET", COLLECTION, headers=headers)

    assert (answer.status, answer.json()) == (200, {})


async def test_another_member_neither_sees_nor_touches_the_cache(accounts, headers, other_headers) -> None:
    shown = await _create(headers)
    path = f"/v1beta/{shown['name']}"

    assert (await asgi_call("GET", COLLECTION, headers=other_headers)).json() == {}
    for method, body in (("GET", b""), ("PATCH", b'{"ttl": "60s"}'), ("DELETE", b"")):
        answer = await asgi_call(method, path, headers=other_headers, body=body)
        assert (answer.status, answer.error["status"]) == (404, "NOT_FOUND"), method
    assert (await asgi_call("GET", path, headers=headers)).json() == shown


async def test_patch_with_a_ttl_and_no_update_mask_moves_every_copys_expiry(accounts, headers, standin) -> None:
    shown = await _create(headers)

    answer = await asgi_call("PATCH", f"/v1beta/{shown['name']}", headers=headers, body=b'{"ttl": "7200s"}')

    assert answer.status == 200, answer.body
    patched = answer.json()
    assert _moment(patched["expireTime"]) - _moment(patched["updateTime"]) == timedelta(seconds=7200)
    assert patched["createTime"] == shown["createTime"]
    (copy,) = standin.caches.stored()
    (placement,) = await _placements()
    assert copy.expire_time == placement.expires_at == _moment(patched["expireTime"])


async def test_patch_reads_json_whatever_the_content_type_says(accounts, headers) -> None:
    shown = await _create(headers)
    curl_headers = {**headers, "content-type": "application/x-www-form-urlencoded"}

    answer = await asgi_call("PATCH", f"/v1beta/{shown['name']}", headers=curl_headers, body=b'{"ttl": "60s"}')

    assert answer.status == 200, answer.body
    assert _moment(answer.json()["expireTime"]) - _moment(answer.json()["updateTime"]) == timedelta(seconds=60)


async def test_patch_by_expire_time(accounts, headers) -> None:
    shown = await _create(headers)
    wanted = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    body = json.dumps({"expireTime": wanted.isoformat().replace("+00:00", "Z")}).encode()

    answer = await asgi_call("PATCH", f"/v1beta/{shown['name']}", headers=headers, body=body)

    assert _moment(answer.json()["expireTime"]) == wanted


async def test_patch_drops_the_copy_of_an_unreachable_account(accounts, headers) -> None:
    shown = await _create(headers)
    accounts.connected.discard(accounts.ids["account-a@example.com"])

    answer = await asgi_call("PATCH", f"/v1beta/{shown['name']}", headers=headers, body=b'{"ttl": "7200s"}')

    assert answer.status == 200
    assert await _placements() == []


async def test_patch_drops_a_copy_the_upstream_lost(accounts, headers, standin) -> None:
    shown = await _create(headers)
    standin.caches.lose(standin.caches.stored()[0].name)

    await asgi_call("PATCH", f"/v1beta/{shown['name']}", headers=headers, body=b'{"ttl": "7200s"}')

    assert await _placements() == []


@pytest.mark.parametrize(
    ("query", "body", "words"),
    [
        ("", b"{}", "Either ttl or expire_time"),
        ("", b'{"ttl": "soon"}', "google.protobuf.Duration"),
        ("", b'{"ttl": "-5s"}', "google.protobuf.Duration"),
        ("", b'{"ttl": "0s"}', "in the future"),
        ("", b'{"ttl": "999999999999s"}', "out of range"),
        ("", b'{"expireTime": "9999-12-31T23:59:59Z", "ttl": "5s"}', "Only one"),
        ("", b'{"expireTime": "2020-01-01T00:00:00Z"}', "in the future"),
        ("", b'{"expireTime": 17}', "google.protobuf.Timestamp"),
        ("updateMask=displayName", b'{"ttl": "60s"}', "Only ttl or expire_time"),
        ("", b"[1, 2]", "JSON object"),
        ("", b"{not json", "Invalid JSON payload"),
        ("", b"[" * 5000 + b"]" * 5000, "nests deeper"),
    ],
)
async def test_a_bad_patch_is_refused_and_changes_nothing(accounts, headers, query, body, words) -> None:
    shown = await _create(headers)

    answer = await asgi_call("PATCH", f"/v1beta/{shown['name']}", query=query, headers=headers, body=body)

    assert answer.status == 400, answer.body
    assert answer.error["status"] == "INVALID_ARGUMENT"
    assert words in answer.error["message"]
    assert (await asgi_call("GET", f"/v1beta/{shown['name']}", headers=headers)).json() == shown


async def test_delete_answers_empty_and_removes_the_upstream_copies(accounts, headers, standin) -> None:
    shown = await _create(headers)

    answer = await asgi_call("DELETE", f"/v1beta/{shown['name']}", headers=headers, body=b"{}")

    assert (answer.status, answer.json()) == (200, {})
    assert len(standin.caches) == 0
    assert await _placements() == []
    assert (await asgi_call("GET", f"/v1beta/{shown['name']}", headers=headers)).status == 404


async def test_an_expired_cache_is_gone(accounts, headers) -> None:
    shown = await _create(headers)
    await CachedContent.objects.filter(id=shown["name"].split("/")[1]).aupdate(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )

    assert (await asgi_call("GET", f"/v1beta/{shown['name']}", headers=headers)).status == 404
    assert (await asgi_call("GET", COLLECTION, headers=headers)).json() == {}


@pytest.mark.parametrize("name", ["cachedContents/UPPER", "cachedContents/" + "a" * 41, "cachedContents/a.b"])
async def test_a_malformed_name_is_not_found(accounts, headers, name) -> None:
    answer = await asgi_call("GET", f"/v1beta/{name}", headers=headers)

    assert (answer.status, answer.error["status"]) == (404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[]", "JSON object"),
        (b"{", "Invalid JSON payload"),
        (b'{"contents": []}', "model is required"),
        (b'{"model": 5}', "model is required"),
        (b'{"model": "models/../../files"}', "Invalid model name"),
        (_create_body(displayName="x" * 129), "display_name"),
        (_create_body(displayName=["a"]), "display_name"),
        (_create_body(ttl="forever"), "google.protobuf.Duration"),
        (_create_body(expireTime="2001-01-01T00:00:00Z", ttl=None), "in the future"),
        (_create_body(contents=[{"parts": [{"text": "nul \u0000 here"}]}]), "NUL"),
        (b'{"model": "models/gemini-2.5-flash", "a": ' + b"[" * 200 + b"]" * 200 + b"}", "nests deeper"),
    ],
)
async def test_a_hostile_create_is_refused_before_any_upstream_call(accounts, headers, body, words) -> None:
    answer = await asgi_call("POST", COLLECTION, headers=headers, body=body)

    assert answer.status == 400, answer.body
    assert answer.error["status"] == "INVALID_ARGUMENT"
    assert words in answer.error["message"]
    assert accounts.calls == []


@pytest.mark.parametrize("path", [COLLECTION, f"{COLLECTION}/abcdefghijkl"])
async def test_a_cors_preflight_needs_no_key(path) -> None:
    answer = await asgi_call(
        "OPTIONS", path, headers={"origin": "https://app.example", "access-control-request-method": "PATCH"}
    )

    assert answer.status == 204
    assert "x-goog-api-key" in answer.headers["access-control-allow-headers"]


async def test_a_create_with_a_host_django_would_refuse_is_served(accounts, headers) -> None:
    answer = await asgi_call("POST", COLLECTION, headers={**headers, "host": "evil.example:1"}, body=_create_body())

    assert answer.status == 200, answer.body


async def test_calls_without_a_key_are_refused_as_google_does(accounts) -> None:
    for method, path in (("POST", COLLECTION), ("GET", COLLECTION), ("GET", f"{COLLECTION}/abc")):
        answer = await asgi_call(method, path, body=_create_body() if method == "POST" else b"")
        assert (answer.status, answer.error["status"]) == (403, "PERMISSION_DENIED"), (method, path)


async def test_create_with_no_executor_connected_is_unavailable(accounts, headers) -> None:
    accounts.connected.clear()

    answer = await asgi_call("POST", COLLECTION, headers=headers, body=_create_body())

    assert (answer.status, answer.error["status"]) == (503, "UNAVAILABLE")
    assert await CachedContent.objects.acount() == 0


@pytest.mark.django_db(transaction=True, databases=["default", "postgresql"])
async def test_on_postgresql_a_nul_is_refused_and_a_cache_is_kept(on_postgresql, accounts, headers) -> None:
    refused = await asgi_call(
        "POST", COLLECTION, headers=headers, body=_create_body(contents=[{"parts": [{"text": "\u0000"}]}])
    )
    shown = await _create(headers)

    assert refused.status == 400
    assert (await asgi_call("GET", f"/v1beta/{shown['name']}", headers=headers)).json() == shown
