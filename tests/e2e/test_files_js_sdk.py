"""The official JS SDK (@google/genai, pinned in tests/node) uploads, lists, downloads and deletes through the gateway.

JS swaps its own base URL's origin into the upload URL and sends its key
with every chunk: a different path through the resumable protocol from Python's.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import missing_component
from tests.e2e.harness import Gateway

NODE_PACKAGE = Path(__file__).resolve().parents[1] / "node"
TWENTY_MIB = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None or not (NODE_PACKAGE / "node_modules" / "@google" / "genai").is_dir():
        missing_component("Node.js and tests/node's packages are needed (scripts/setup --dev installs them)")
    return found or ""


def run_script(node: str, gateway: Gateway, key: str) -> dict:
    result = subprocess.run(
        [node, "files.mjs"],
        cwd=NODE_PACKAGE,
        env={
            "PATH": "/usr/bin:/bin",
            "GEMPROXY_URL": gateway.url,
            "GEMPROXY_KEY": key,
            "UPLOAD_BYTES": str(TWENTY_MIB),
        },
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_js_sdk_uploads_20_mib_and_gets_lists_downloads_and_deletes_it(node, gateway: Gateway, proxy_key) -> None:
    outcome = run_script(node, gateway, proxy_key)

    uploaded = outcome["uploaded"]
    assert uploaded["state"] == "ACTIVE"
    assert uploaded["sizeBytes"] == str(TWENTY_MIB)
    assert uploaded["mimeType"] == "application/pdf"
    assert uploaded["displayName"] == "from-node.pdf"
    assert base64.b64decode(uploaded["sha256Hash"]).decode() == outcome["sha256"]
    assert outcome["got"]["name"] == uploaded["name"]
    assert uploaded["name"] in outcome["listed"]
    assert outcome["downloadedSha256"] == outcome["sha256"]
    assert outcome["afterDelete"] == 403
