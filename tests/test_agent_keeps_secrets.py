"""The headless agent's secrets stay out of `ps`, its log and its error frames.

The executor token and the upstream key come from the environment or from a file; a flag still
works but draws a warning, and `--help` says why. The upstream key travels in the x-goog-api-key
header, never in the URL, so no failing upstream call can put it into a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientResponseError, RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from executors.agent import describe_error, parse_args
from tests import agent_harness
from tests.agent_harness import (
    AGENT_KEY,
    REPO_ROOT,
    STREAM_PATH,
    TOKEN,
    closed_port,
    collect,
    generate_body,
    send_task,
)

# The harness's fixtures, taken by assignment so that pytest finds them here.
fake = agent_harness.fake
gateway = agent_harness.gateway
start_agent = agent_harness.start_agent
link = agent_harness.link

SERVER = "http://gateway.test"


@pytest.fixture(autouse=True)
def no_secrets_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEMPROXY_SERVER", "GEMPROXY_EXECUTOR_TOKEN", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def secret_file(tmp_path: Path, text: str, name: str = "secret") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return str(path)


def test_token_and_upstream_key_are_read_from_files(tmp_path, capsys):
    token_file = secret_file(tmp_path, f"  {TOKEN}  \r\nsecond line is ignored\n", "token")
    key_file = secret_file(tmp_path, f"{AGENT_KEY}\n", "key")

    config = parse_args(["--server", SERVER, "--token-file", token_file, "--upstream-key-file", key_file])

    assert (config.token, config.upstream_key) == (TOKEN, AGENT_KEY)
    assert capsys.readouterr().err == "", "no warning for secrets from files"


def test_token_and_upstream_key_are_read_from_the_environment_without_a_warning(monkeypatch, capsys):
    monkeypatch.setenv("GEMPROXY_EXECUTOR_TOKEN", TOKEN)
    monkeypatch.setenv("GEMINI_API_KEY", AGENT_KEY)

    config = parse_args(["--server", SERVER])

    assert (config.token, config.upstream_key) == (TOKEN, AGENT_KEY)
    assert capsys.readouterr().err == ""


def test_a_file_takes_precedence_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMPROXY_EXECUTOR_TOKEN", "gpe_from-the-environment")

    config = parse_args(["--server", SERVER, "--token-file", secret_file(tmp_path, TOKEN)])

    assert config.token == TOKEN


@pytest.mark.parametrize(
    ("flag", "value", "advice"),
    [
        ("--token", TOKEN, "use GEMPROXY_EXECUTOR_TOKEN or --token-file instead"),
        ("--upstream-key", AGENT_KEY, "use GEMINI_API_KEY or --upstream-key-file instead"),
    ],
)
def test_a_secret_given_as_a_flag_works_but_draws_a_one_line_warning(monkeypatch, capsys, flag, value, advice):
    monkeypatch.setenv("GEMPROXY_EXECUTOR_TOKEN", TOKEN)

    config = parse_args(["--server", SERVER, flag, value])

    assert value in (config.token, config.upstream_key)
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1
    assert f"warning: {flag} is visible to other users in `ps`" in warning and advice in warning
    assert value not in warning


@pytest.mark.parametrize("content", ["", "\n", "   \n", "\nsecret on the second line\n"], ids=repr)
@pytest.mark.parametrize("option", ["--token-file", "--upstream-key-file"])
def test_an_empty_secret_file_is_refused_with_a_clear_message(tmp_path, monkeypatch, capsys, option, content):
    monkeypatch.setenv("GEMPROXY_EXECUTOR_TOKEN", TOKEN)
    path = secret_file(tmp_path, content)

    with pytest.raises(SystemExit) as exit_:
        parse_args(["--server", SERVER, option, path])

    assert exit_.value.code == 2
    assert f"{option}: {path} is empty: its first line must hold the secret" in capsys.readouterr().err


def test_a_missing_secret_file_is_refused_with_a_clear_message(tmp_path, capsys):
    missing = tmp_path / "no-such-file"

    with pytest.raises(SystemExit):
        parse_args(["--server", SERVER, "--token-file", str(missing)])

    assert f"--token-file: cannot read {missing}: No such file or directory" in capsys.readouterr().err


def test_a_secret_given_both_as_a_flag_and_as_a_file_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--server", SERVER, "--token", TOKEN, "--token-file", secret_file(tmp_path, TOKEN)])

    assert "give --token or --token-file, not both" in capsys.readouterr().err


def test_help_says_flags_are_visible_in_ps_and_env_or_file_are_preferred(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())

    assert "--token-file PATH" in help_text and "--upstream-key-file PATH" in help_text
    assert "a flag's value is visible to every user of this machine in `ps`" in help_text
    assert "Prefer the environment (GEMPROXY_EXECUTOR_TOKEN, GEMINI_API_KEY) or a file" in help_text


async def test_agent_process_runs_with_secrets_from_files(gateway, fake, tmp_path):
    token_file = secret_file(tmp_path, TOKEN + "\n", "token")
    key_file = secret_file(tmp_path, AGENT_KEY + "\n", "key")
    env = {
        name: value for name, value in os.environ.items() if name not in ("GEMPROXY_EXECUTOR_TOKEN", "GEMINI_API_KEY")
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "executors.agent", "--server", gateway.url, "--upstream", fake.url,
        "--token-file", token_file, "--upstream-key-file", key_file,
        cwd=REPO_ROOT, env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        link = await gateway.next_link(within=10)
        relayed = await collect(link, await send_task(link, generate_body("from files")))
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    logs = (await process.stderr.read()).decode()

    assert relayed.status == 200
    assert fake.requests[-1].api_key == AGENT_KEY
    assert "warning" not in logs
    assert TOKEN not in logs and AGENT_KEY not in logs


class GarbageUpstream:
    """An upstream that answers with a malformed status line, which aiohttp reports with the URL."""

    def __init__(self) -> None:
        self.url = ""
        self.server: asyncio.Server | None = None

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 abc nonsense\r\n\r\n")
        await writer.drain()
        writer.close()


@pytest.fixture
async def garbage_upstream() -> AsyncIterator[GarbageUpstream]:
    upstream = GarbageUpstream()
    upstream.server = await asyncio.start_server(upstream.answer, "127.0.0.1", 0)
    upstream.url = f"http://127.0.0.1:{upstream.server.sockets[0].getsockname()[1]}"
    yield upstream
    upstream.server.close()


async def failed_call_leaves_no_secret(link, caplog, prompt: str) -> None:
    task_id = await send_task(link, generate_body(prompt), path=STREAM_PATH, query="alt=sse")
    relayed = await collect(link, task_id)
    await asyncio.sleep(0)  # the task's log line is written after its last frame

    frames = [str(frame) for frame in (relayed.error, relayed.end, relayed.headers) if frame]
    assert relayed.error is not None or relayed.status >= 500
    for secret in (AGENT_KEY, TOKEN):
        assert secret not in caplog.text
        assert not any(secret in frame for frame in frames)


async def test_a_malformed_upstream_answer_leaves_the_key_out_of_log_and_error_frame(
    start_agent, gateway, garbage_upstream, caplog
):
    caplog.set_level(logging.DEBUG)
    await start_agent(upstream=garbage_upstream.url)
    link = await gateway.next_link()

    await failed_call_leaves_no_secret(link, caplog, "garbage")


async def test_an_unreachable_upstream_leaves_the_key_out_of_log_and_error_frame(start_agent, gateway, caplog):
    caplog.set_level(logging.DEBUG)
    await start_agent(upstream=f"http://127.0.0.1:{closed_port()}")
    link = await gateway.next_link()

    await failed_call_leaves_no_secret(link, caplog, "anyone there?")


@pytest.mark.parametrize("prompt", ["break #midstream-drop", "fail #error=500"])
async def test_an_upstream_failure_leaves_the_key_out_of_log_and_frames(link, fake, caplog, prompt):
    caplog.set_level(logging.DEBUG)

    await failed_call_leaves_no_secret(link, caplog, prompt)

    seen = fake.requests[-1]
    assert seen.api_key == AGENT_KEY, "the key travels in the x-goog-api-key header"
    assert AGENT_KEY not in seen.query and "key" not in seen.query


def test_an_error_description_leaves_out_the_url_and_stays_on_one_line():
    url = URL("http://upstream.test/v1beta/models?alt=sse&pageToken=client-secret")
    info = RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)
    error = ClientResponseError(info, (), status=400, message="Bad status line:\n  Invalid status code")

    description = describe_error(error)

    assert description == "ClientResponseError: 400, Bad status line: Invalid status code"
