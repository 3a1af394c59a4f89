"""A cached content that refers to a proxy file, through real Daphne and real executors, with the official SDK.

Needs the files surface (upload), replication (resources.references,
resources.replication) and the relay's binding of caches: run after merging.
The file is uploaded while only account A is connected; the cache is created on
A with A's copy of the file; when only B is connected, a call naming the cache
makes B copy the file and create the cache again, transparently.
"""

from __future__ import annotations

import json
from pathlib import Path

from google.genai import types

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, ThreadedUpstream

MODEL = "gemini-2.5-flash"
BIG_TEXT = "A cached paragraph. " * 220  # 1,100 stand-in tokens, plus 258 for the file


def _cache_creations_by(upstream: ThreadedUpstream, agent: str) -> list[dict]:
    key = f"upstream-key-of-{agent}"
    return [
        json.loads(r.body)
        for r in upstream.requests
        if r.method == "POST" and r.path.endswith("/cachedContents") and r.api_key == key
    ]


def _file_uris(body: dict) -> list[str]:
    # The SDK writes fileData's fields in snake case, Google's curl examples in camel case.
    found = []
    for content in body["contents"]:
        for part in content["parts"]:
            data = part.get("fileData") or part.get("file_data")
            if data:
                found.append(data.get("fileUri") or data.get("file_uri"))
    return found


def test_a_cache_with_a_file_follows_the_call_to_another_account(
    deployment: Deployment, proxy_key: str, upstream: ThreadedUpstream, tmp_path: Path
) -> None:
    gateway = deployment.start_gateway("gateway-cache-files")
    agent_a = deployment.start_agent(gateway, deployment.executor_token("files-a@example.com"), upstream.url, "files-a")
    gateway.wait_for_executors(1)
    client = sdk_client(gateway, proxy_key, "v1beta")
    document = tmp_path / "handbook.pdf"
    document.write_bytes(b"%PDF-1.4 handbook " * 4096)
    uploaded = client.files.upload(file=document, config={"mime_type": "application/pdf"})

    cache = client.caches.create(
        model=MODEL,
        config={
            "contents": [
                types.Content(
                    role="user",
                    parts=[
                        types.Part.from_uri(file_uri=uploaded.uri, mime_type="application/pdf"),
                        types.Part.from_text(text=BIG_TEXT),
                    ],
                )
            ],
            "ttl": "900s",
        },
    )
    assert cache.usage_metadata.total_token_count == 1100 + 258
    (on_a,) = _cache_creations_by(upstream, "files-a")
    assert _file_uris(on_a) and uploaded.name.split("/")[1] not in _file_uris(on_a)[0]  # A's own copy of the file

    agent_a.kill()
    gateway.wait_for_executors(0)
    deployment.start_agent(gateway, deployment.executor_token("files-b@example.com"), upstream.url, "files-b")
    gateway.wait_for_executors(1)

    answer = client.models.generate_content(model=MODEL, contents="summarise", config={"cached_content": cache.name})

    assert answer.usage_metadata.cached_content_token_count == 1100 + 258
    (on_b,) = _cache_creations_by(upstream, "files-b")
    assert _file_uris(on_b) and _file_uris(on_b) != _file_uris(on_a)  # B's own copy, uploaded through B
