"""The official JS SDK (@google/genai, pinned in tests/node) creates, lists, updates, uses and deletes a cache.

Needs tests/node's @google/genai (the files work pins it; scripts/setup --dev
installs it) and the relay's binding of caches for the generation: run after merging.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import missing_component
from tests.e2e.harness import Gateway

NODE_PACKAGE = Path(__file__).resolve().parents[1] / "node"


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None or not (NODE_PACKAGE / "node_modules" / "@google" / "genai").is_dir():
        missing_component("Node.js and tests/node's packages are needed (scripts/setup --dev installs them)")
    return found or ""


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_js_sdk_creates_lists_updates_uses_and_deletes_a_cache(node, gateway: Gateway, proxy_key: str) -> None:
    result = subprocess.run(
        [node, "caches.mjs"],
        cwd=NODE_PACKAGE,
        env={"PATH": "/usr/bin:/bin", "GEMPROXY_URL": gateway.url, "GEMPROXY_KEY": proxy_key},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])

    created = outcome["created"]
    assert created["name"].startswith("cachedContents/")
    assert (created["model"], created["displayName"]) == ("models/gemini-2.5-flash", "from-node")
    assert created["usageMetadata"] == {"totalTokenCount": 1100}
    assert outcome["got"] == created
    assert created["name"] in outcome["listed"]
    updated = outcome["updated"]
    assert (_moment(updated["expireTime"]) - _moment(updated["updateTime"])).total_seconds() == 7200
    assert outcome["usage"]["cachedContentTokenCount"] == 1100
    assert outcome["afterDelete"] == 404
