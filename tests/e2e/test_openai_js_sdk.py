"""The official ``openai`` JavaScript SDK, run by Node, works through the gateway (tests/node, pinned)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ROOT, Deployment, Gateway, ThreadedUpstream

NODE_DIR = ROOT / "tests" / "node"


@pytest.fixture(scope="module")
def node_clients() -> Path:
    """tests/node with its pinned packages installed (npm ci from the lock file)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node and npm are needed for the JS SDK test")
        pytest.skip("node and npm are not installed")
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300)
    return NODE_DIR


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    install = Deployment(
        Path(tmp_path_factory.mktemp("openai-js")), {"GEMPROXY_MODEL_ALIASES": "gpt-4o=gemini-2.5-flash"}
    )
    yield install
    install.stop()


@pytest.fixture(scope="module")
def gateway(deployment: Deployment, upstream: ThreadedUpstream) -> Gateway:
    gateway = deployment.start_gateway()
    deployment.start_agent(gateway, deployment.executor_token(), upstream.url, name="executor-1")
    gateway.wait_for_executors(1)
    return gateway


def test_the_openai_js_sdk_completes_streams_and_is_refused_a_bad_key(node_clients, deployment, gateway):
    run = subprocess.run(
        ["node", "openai_chat.mjs"],
        cwd=node_clients,
        env={**os.environ, "GEMPROXY_URL": gateway.url, "GEMPROXY_KEY": deployment.proxy_key("alice")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["content"].startswith("echo: hello from node") and seen["model"] == "gpt-4o"
    assert seen["streamed"].startswith("echo: stream from node")
    assert seen["usage"]["total_tokens"] > 0
    assert seen["badKeyStatus"] == 401
