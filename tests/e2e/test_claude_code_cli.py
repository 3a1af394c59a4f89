"""Claude Code, Anthropic's CLI (tests/node_clis, pinned), works against the gateway as a member sets it up:
``ANTHROPIC_BASE_URL`` the gateway's root, ``ANTHROPIC_API_KEY`` a proxy key, Claude model names as aliases.

Needs the Anthropic routes in ``gateway.compat.urls`` (``anthropic_routes.urlpatterns_for``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ROOT, Deployment, Gateway, ThreadedUpstream

CLI_DIR = ROOT / "tests" / "node_clis"
# npm 11 does not run the package's postinstall, so the wrapper finds the platform binary itself.
WRAPPER = CLI_DIR / "node_modules" / "@anthropic-ai" / "claude-code" / "cli-wrapper.cjs"
ALIASES = "claude-sonnet-4-5=gemini-2.5-flash,claude-haiku-4-5=gemini-2.5-flash-lite"


@pytest.fixture(scope="module")
def claude_code() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node and npm are needed to run Claude Code")
        pytest.skip("node and npm are not installed")
    if not WRAPPER.is_file():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CLI_DIR, check=True, timeout=600)
    return WRAPPER


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    install = Deployment(Path(tmp_path_factory.mktemp("claude-code")), {"GEMPROXY_MODEL_ALIASES": ALIASES})
    yield install
    install.stop()


@pytest.fixture(scope="module")
def gateway(deployment: Deployment, upstream: ThreadedUpstream) -> Gateway:
    gateway = deployment.start_gateway()
    deployment.start_agent(gateway, deployment.executor_token(), upstream.url, name="executor-1")
    gateway.wait_for_executors(1)
    return gateway


def run_claude(claude_code: Path, gateway: Gateway, key: str, prompt: str, home: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_API_KEY": key,
        "ANTHROPIC_MODEL": "claude-sonnet-4-5",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-4-5",
        # No call anywhere but the gateway: no telemetry, no update check, no error reporting.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "HOME": str(home),
    }
    return subprocess.run(
        ["node", str(claude_code), "-p", prompt, "--output-format", "json"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_claude_code_answers_a_prompt_through_the_gateway(claude_code, deployment, gateway, upstream, tmp_path):
    run = run_claude(claude_code, gateway, deployment.proxy_key("alice"), "hello from claude code", tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["is_error"] is False and result["result"] == "echo: hello from claude code"
    assert result["usage"]["input_tokens"] > 0
    called = [r.path for r in upstream.requests if b"hello from claude code" in r.body]
    assert "/v1beta/models/gemini-2.5-flash:streamGenerateContent" in called
