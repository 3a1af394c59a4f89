"""The product's stand-in for Gemini (executors.standin) never passes for Google."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from google import genai

from executors.standin import GeminiStandIn

MODEL = "gemini-2.5-flash"
REPO_ROOT = Path(__file__).resolve().parent.parent
HELLO = {"contents": [{"parts": [{"text": "who are you?"}]}]}


@pytest.fixture
async def standalone_url() -> AsyncIterator[str]:
    """The stand-in as the demo starts it: ``python -m executors.standin``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "executors.standin", "--port", "0", cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        yield (await asyncio.wait_for(process.stdout.readline(), timeout=10)).decode().strip()
    finally:
        process.terminate()
        await process.wait()


async def test_the_standalone_stand_in_says_so_in_every_answers_model_version(standalone_url):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{standalone_url}/v1beta/models/{MODEL}:generateContent", json=HELLO) as unary:
            assert (await unary.json())["modelVersion"] == f"{MODEL} (gemproxy stand-in, not Google)"
        stream_url = f"{standalone_url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
        async with http.post(stream_url, json=HELLO) as stream:
            events = [line for line in (await stream.text()).splitlines() if line.startswith("data: ")]
    assert events
    assert all('"modelVersion":"gemini-2.5-flash (gemproxy stand-in, not Google)"' in event for event in events)


async def test_the_sdk_reads_the_disclosed_model_version():
    async with GeminiStandIn(disclose=True) as standin:
        sdk = genai.Client(api_key="any", http_options={"base_url": standin.url})
        response = await sdk.aio.models.generate_content(model=MODEL, contents="hello")
    assert response.model_version == f"{MODEL} (gemproxy stand-in, not Google)"
    assert response.text == "echo: hello"


async def test_the_stand_in_never_names_itself_as_googles_server_nor_its_models_as_googles(standalone_url):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{standalone_url}/v1beta/models/{MODEL}") as answer:
            model = await answer.json()
            server = answer.headers["Server"]
    assert "scaffolding" not in server
    assert "not Google" in server
    assert "not Google" in model["description"]
