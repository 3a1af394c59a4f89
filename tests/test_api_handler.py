"""The lean handler of the API paths (gemproxy_site.handlers.ApiHandler), driven over ASGI as Daphne drives it.

Django's test client has a handler of its own, so these tests speak ASGI.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from django.core.signals import request_finished
from django.http.request import RawPostDataException

from gemproxy_site import handlers
from gemproxy_site.asgi_extensions import ON_DISCONNECT
from tests import lean_api_urls


def scope(path: str, method: str = "POST") -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }


class Client:
    """One ASGI request: what the app sent, and a way to hang up."""

    def __init__(self, body: bytes = b"") -> None:
        self.incoming: asyncio.Queue = asyncio.Queue()
        self.incoming.put_nowait({"type": "http.request", "body": body, "more_body": False})
        self.sent: list[dict] = []
        self.outgoing: asyncio.Queue = asyncio.Queue()  # what was sent, to wait for

    async def receive(self) -> dict:
        return await self.incoming.get()

    async def send(self, message: dict) -> None:
        self.sent.append(message)
        self.outgoing.put_nowait(message)

    def hang_up(self) -> None:
        self.incoming.put_nowait({"type": "http.disconnect"})

    @property
    def status(self) -> int:
        return self.sent[0]["status"]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


@pytest.fixture
def app():
    return handlers.http_application()


@pytest.fixture
def test_views(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(handlers.ApiHandler, "urlconf", "tests.lean_api_urls")
    lean_api_urls.seen.clear()
    # New events for each test: an event is bound to the loop that first waits on it.
    monkeypatch.setattr(lean_api_urls, "started", asyncio.Event())
    monkeypatch.setattr(lean_api_urls, "go_on", asyncio.Event())
    return lean_api_urls.seen


async def test_an_unknown_api_path_answers_in_geminis_shape_from_the_api_urlconf(app) -> None:
    client = Client(b"{}")
    await app(scope("/v1beta/models/gemini-2.5-flash:sing"), client.receive, client.send)

    assert client.status == 404
    assert json.loads(client.body)["error"]["status"] == "NOT_FOUND"


async def test_a_client_that_hangs_up_cancels_the_view(app, test_views) -> None:
    client = Client()
    serving = asyncio.create_task(app(scope("/v1beta/slow"), client.receive, client.send))
    await asyncio.wait_for(lean_api_urls.started.wait(), 5)

    client.hang_up()
    await asyncio.wait_for(serving, 5)

    assert test_views.get("cancelled") is True
    assert client.sent == []  # nothing is answered to a client that left


async def test_a_server_that_says_when_its_client_leaves_spares_the_handler_a_task(app, test_views) -> None:
    """Under our server (the ON_DISCONNECT extension) no task waits on receive; the view is cancelled all the same."""
    client = Client()
    told: list = []
    served = scope("/v1beta/slow")
    served["extensions"] = {ON_DISCONNECT: told.append}
    receives = 0
    real_receive = client.receive

    async def counted_receive() -> dict:
        nonlocal receives
        receives += 1
        return await real_receive()

    serving = asyncio.create_task(app(served, counted_receive, client.send))
    await asyncio.wait_for(lean_api_urls.started.wait(), 5)
    assert receives == 1, "the body only: nothing waits on receive for the disconnect"

    told[0]()  # the server: the client left
    await asyncio.wait_for(serving, 5)

    assert test_views.get("cancelled") is True
    assert client.sent == []


async def test_the_servers_own_cancel_still_cancels_the_request(app, test_views) -> None:
    client = Client()
    serving = asyncio.create_task(app(scope("/v1beta/slow"), client.receive, client.send))
    await asyncio.wait_for(lean_api_urls.started.wait(), 5)

    serving.cancel()

    with pytest.raises(asyncio.CancelledError):
        await serving
    assert test_views.get("cancelled") is True


async def test_a_synchronous_view_is_served_with_its_body(app, test_views) -> None:
    client = Client(b'{"a": 1}')
    await app(scope("/v1beta/sync"), client.receive, client.send)

    assert client.status == 200
    assert json.loads(client.body) == {"body": '{"a": 1}', "path": "/v1beta/sync"}


def pieces(*messages: dict) -> Client:
    client = Client()
    client.incoming = asyncio.Queue()
    for message in messages:
        client.incoming.put_nowait(message)
    return client


async def test_a_body_in_pieces_reaches_the_view_whole(app, test_views) -> None:
    client = pieces(
        {"type": "http.request", "body": b'{"a": ', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": False},
    )
    await app(scope("/v1beta/sync"), client.receive, client.send)

    assert client.status == 200
    assert json.loads(client.body) == {"body": '{"a": 1}', "path": "/v1beta/sync"}


async def test_a_client_that_hangs_up_inside_its_body_gets_no_answer(app, test_views) -> None:
    client = pieces({"type": "http.request", "body": b'{"a": ', "more_body": True}, {"type": "http.disconnect"})
    await app(scope("/v1beta/sync"), client.receive, client.send)

    assert client.sent == []


async def test_a_stream_lets_go_of_its_head_once_sent_and_relays_every_piece(app, test_views) -> None:
    """A stream stays open for minutes: the head it sent at the start is not kept for all that time."""
    client = Client()
    serving = asyncio.create_task(app(scope("/v1beta/stream", "GET"), client.receive, client.send))
    start = await asyncio.wait_for(client.outgoing.get(), 5)
    first = await asyncio.wait_for(client.outgoing.get(), 5)
    head = dict(start["headers"])
    assert start["status"] == 200
    assert head[b"Content-Type"] == b"text/event-stream" and head[b"X-Stream"] == b"held"
    assert head[b"Set-Cookie"].startswith(b"seen=yes")
    assert first == {"type": "http.response.body", "body": b"data: 1\r\n\r\n", "more_body": True}
    assert list(test_views["response"].items()) == [], "the open stream still holds its sent head"

    lean_api_urls.go_on.set()
    await asyncio.wait_for(serving, 5)
    assert client.body == b"data: 1\r\n\r\ndata: 2\r\n\r\n"
    assert client.sent[-1] == {"type": "http.response.body"}


async def test_a_stream_does_not_keep_its_request_body_while_it_streams(app, test_views) -> None:
    """A long prompt's bytes were held by Django's request, its file and the handler's for the stream's whole life."""
    prompt = b'{"contents": "' + b"x" * 100_000 + b'"}'
    client = Client(prompt)
    serving = asyncio.create_task(app(scope("/v1beta/stream"), client.receive, client.send))
    await asyncio.wait_for(client.outgoing.get(), 5)  # the head
    await asyncio.wait_for(client.outgoing.get(), 5)  # the first piece: the stream is open
    request = test_views["request"]

    assert test_views.pop("body_read") == prompt  # the view had it whole
    assert "_body" not in request.__dict__
    assert request._stream.closed
    with pytest.raises(RawPostDataException):
        request.body  # noqa: B018  (reading it again is refused, not answered with nothing)

    lean_api_urls.go_on.set()
    await asyncio.wait_for(serving, 5)
    assert client.body == b"data: 1\r\n\r\ndata: 2\r\n\r\n"


@pytest.fixture
def finished() -> Iterator[list[object]]:
    """The senders of every request_finished signal during the test."""
    senders: list[object] = []

    def on_finished(sender, **kwargs) -> None:
        senders.append(sender)

    request_finished.connect(on_finished)
    yield senders
    request_finished.disconnect(on_finished)


async def test_a_file_answer_is_released_once_sent_and_no_request_finished_signal_is_sent(
    app, test_views, finished
) -> None:
    client = Client()
    await app(scope("/v1beta/download", "GET"), client.receive, client.send)

    assert client.status == 200
    assert client.body == b"file bytes"
    assert test_views["file"].closed
    assert finished == []


@pytest.mark.django_db(transaction=True)
async def test_a_site_page_still_goes_through_djangos_handler_and_its_signals(app, finished) -> None:
    client = Client()
    await app(scope("/favicon.ico", "GET"), client.receive, client.send)

    assert client.status == 200
    assert finished == [handlers.SiteHandler]
