"""What curl users and non-SDK tools see: key placement, framing, and errors for bad input."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx2 as httpx
import pytest

from tests.e2e.harness import Gateway, ThreadedUpstream

GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


def body(text: str, **extra) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], **extra}


def upstream_request_with(upstream: ThreadedUpstream, marker: str):
    return next(r for r in reversed(upstream.requests) if marker.encode() in r.body)


@pytest.fixture
def http(gateway: Gateway):
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


@pytest.mark.parametrize(
    "placement",
    ["header", "header-upper-case", "query", "bearer"],
)
def test_the_key_is_accepted_wherever_clients_put_it(http, proxy_key: str, placement: str) -> None:
    headers, params = {}, {}
    if placement == "header":
        headers["x-goog-api-key"] = proxy_key
    elif placement == "header-upper-case":
        headers["X-GOOG-API-KEY"] = proxy_key
    elif placement == "query":
        params["key"] = proxy_key
    else:
        headers["Authorization"] = f"Bearer {proxy_key}"

    response = http.post(GENERATE, json=body(f"key in {placement}"), headers=headers, params=params)

    assert response.status_code == 200, response.text
    assert response.json()["candidates"][0]["content"]["parts"][0]["text"].startswith(f"echo: key in {placement}")


def test_a_key_in_the_query_is_not_forwarded(http, proxy_key: str, upstream: ThreadedUpstream) -> None:
    http.post(f"{GENERATE}?key={proxy_key}&alt=json", json=body("query key stripped"))

    request = upstream_request_with(upstream, "query key stripped")
    assert "key=" not in request.query
    assert "alt=json" in request.query


def test_a_key_in_the_query_never_reaches_the_access_log(http, gateway: Gateway, proxy_key: str) -> None:
    http.post(f"{GENERATE}?key={proxy_key}", json=body("logged without its key"))

    log = gateway.process.log()
    assert "key=REDACTED" in log
    assert proxy_key not in log


def test_a_missing_key_is_permission_denied(http) -> None:
    response = http.post(GENERATE, json=body("no key"))

    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


def test_an_invalid_key_is_refused_with_googles_error_info(http) -> None:
    response = http.post(GENERATE, json=body("bad key"), headers={"x-goog-api-key": "gpk_wrong"})

    error = response.json()["error"]
    assert response.status_code == 400
    assert error["message"] == "API key not valid. Please pass a valid API key."
    assert error["details"][0]["reason"] == "API_KEY_INVALID"


def test_snake_case_bodies_and_urlsafe_base64_pass_through_untouched(
    http, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    image = bytes(range(256)) * 64
    payload = {
        "contents": [
            {
                "parts": [
                    {"text": "snake case body"},
                    {"inline_data": {"mime_type": "image/png", "data": base64.urlsafe_b64encode(image).decode()}},
                ]
            }
        ],
        "generation_config": {"thinking_config": {"thinking_budget": 128}},
        "someFieldGoogleAddsNextMonth": {"nested": [1, 2, 3]},
    }
    raw = json.dumps(payload).encode()

    headers = {"x-goog-api-key": proxy_key, "content-type": "application/json"}
    response = http.post(GENERATE, content=raw, headers=headers)

    assert response.status_code == 200, response.text
    assert upstream_request_with(upstream, "snake case body").body == raw
    text = response.json()["candidates"][0]["content"]["parts"][0]["text"]
    assert f"sha256={hashlib.sha256(image).hexdigest()}" in text


def test_thought_signatures_and_unknown_fields_survive_both_ways(http, proxy_key: str) -> None:
    signature = base64.b64encode(b"opaque-signature-bytes").decode()
    payload = {
        "contents": [
            {"role": "user", "parts": [{"text": "keep my signature"}]},
            {"role": "model", "parts": [{"text": "earlier answer", "thoughtSignature": signature}]},
            {"role": "user", "parts": [{"text": "and again"}]},
        ]
    }

    response = http.post(GENERATE, json=payload, headers={"x-goog-api-key": proxy_key})

    answer = response.json()
    parts = answer["candidates"][0]["content"]["parts"]
    assert any(part.get("thoughtSignature") == signature for part in parts)
    assert "fakeUnknownField" in answer


def test_a_colon_spelled_percent_3a_reaches_the_same_method(http, proxy_key: str) -> None:
    response = http.post(
        "/v1beta/models/gemini-2.5-flash%3AgenerateContent",
        json=body("percent-encoded colon"),
        headers={"x-goog-api-key": proxy_key},
    )

    assert response.status_code == 200, response.text


def test_sse_stream_frames_every_event_as_google_does(http, proxy_key: str) -> None:
    with http.stream(
        "POST",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        json=body("sse framing #chunks=3"),
        headers={"x-goog-api-key": proxy_key},
    ) as response:
        raw = response.read()

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b""
    assert len(events[:-1]) == 3
    assert all(event.startswith(b"data: {") for event in events[:-1])


def test_stream_without_alt_is_one_json_array(http, proxy_key: str) -> None:
    response = http.post(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        json=body("json array #chunks=3"),
        headers={"x-goog-api-key": proxy_key},
    )

    assert response.headers["content-type"].startswith("application/json")
    elements = response.json()
    assert len(elements) == 3
    assert elements[-1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize(
    ("raw", "why"),
    [(b'{"contents": [', "Invalid JSON payload"), (b"[1, 2]", "must be a JSON object"), (b"", "Invalid JSON")],
    ids=["truncated", "not-an-object", "empty"],
)
def test_malformed_json_is_refused_and_never_forwarded(
    http, proxy_key: str, upstream: ThreadedUpstream, raw: bytes, why: str
) -> None:
    seen_before = len(upstream.requests)

    response = http.post(GENERATE, content=raw, headers={"x-goog-api-key": proxy_key})

    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert why in response.json()["error"]["message"]
    assert len(upstream.requests) == seen_before


def test_an_oversized_body_is_refused_with_the_limit_named(http, proxy_key: str, upstream: ThreadedUpstream) -> None:
    seen_before = len(upstream.requests)
    huge = b'{"contents": "' + b"x" * (21 * 1024 * 1024) + b'"}'

    response = http.post(GENERATE, content=huge, headers={"x-goog-api-key": proxy_key})

    assert response.status_code == 400
    assert "Request payload size exceeds the limit: 20971520 bytes." in response.json()["error"]["message"]
    assert len(upstream.requests) == seen_before


def test_a_wrong_method_is_refused_in_geminis_shape(http, proxy_key: str) -> None:
    response = http.get(GENERATE, headers={"x-goog-api-key": proxy_key})

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "Method GET is not allowed" in response.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/v1beta/models/gemini-2.5-flash:fooBar", "/v1beta/nothingHere", "/v1/models/a/b/c"])
def test_unknown_paths_are_not_found_in_geminis_shape(http, proxy_key: str, path: str) -> None:
    response = http.post(path, json={}, headers={"x-goog-api-key": proxy_key})

    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"
