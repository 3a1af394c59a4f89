"""Codex CLI, OpenAI's coding agent (tests/node_clis, pinned), works against the gateway's Responses surface as a
member sets it up: a model provider with the gateway's ``/openai/v1`` base, ``wire_api = "responses"`` and a
proxy key, an OpenAI model name as an alias.

Needs the Responses routes in ``gateway.compat.urls`` (``responses_routes.urlpatterns_for``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ROOT, Deployment, Gateway, ThreadedUpstream

CLI_DIR = ROOT / "tests" / "node_clis"
CODEX = CLI_DIR / "node_modules" / "@openai" / "codex" / "bin" / "codex.js"


@pytest.fixture(scope="module")
def codex() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node and npm are needed to run Codex CLI")
        pytest.skip("node and npm are not installed")
    if not CODEX.is_file():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CLI_DIR, check=True, timeout=600)
    return CODEX


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    install = Deployment(Path(tmp_path_factory.mktemp("codex")), {"GEMPROXY_MODEL_ALIASES": "gpt-5=gemini-2.5-flash"})
    yield install
    install.stop()


@pytest.fixture(scope="module")
def gateway(deployment: Deployment, upstream: ThreadedUpstream) -> Gateway:
    gateway = deployment.start_gateway()
    deployment.start_agent(gateway, deployment.executor_token(), upstream.url, name="executor-1")
    gateway.wait_for_executors(1)
    return gateway


def test_codex_exec_answers_a_prompt_through_the_gateway(codex, deployment, gateway, upstream, tmp_path):
    codex_home = tmp_path / "codex-home"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(
        'model = "gpt-5"\n'
        'model_provider = "gemproxy"\n\n'
        "[model_providers.gemproxy]\n"
        'name = "gemproxy"\n'
        f'base_url = "{gateway.url}/openai/v1"\n'
        'env_key = "GEMPROXY_KEY"\n'
        'wire_api = "responses"\n'
    )
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "CODEX_HOME": str(codex_home),
        "GEMPROXY_KEY": deployment.proxy_key("alice"),
    }
    run = subprocess.run(
        ["node", str(codex), "exec", "--skip-git-repo-check", "hello from codex"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "echo: hello from codex" in run.stdout
    called = [r for r in upstream.requests if b"hello from codex" in r.body]
    assert called and called[-1].path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
