"""Django's ASGI handler, trimmed for a relay that must add as little as possible.

Measured on the relay path (2-core machine): Django's default handler cost
more than the relay itself. The site keeps Django's handler without its thread
per request; the API paths get a lean one (ApiHandler).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections import OrderedDict
from contextlib import aclosing

from asgiref.sync import sync_to_async
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.core.signals import request_started
from django.db import close_old_connections, reset_queries
from django.http import HttpRequest
from django.http.response import HttpResponseBase, ResponseHeaders
from django.urls import ResolverMatch, get_resolver, set_script_prefix, set_urlconf

from gemproxy_site.asgi_extensions import ON_DISCONNECT

# Paths served without the site's middleware: the Gemini API authenticates by
# key and needs no session, CSRF token, messages or clickjacking headers.
# A path is the API's when its first segment is one of these, however many
# slashes precede it ("//v1beta/models" from a base URL ending in "/") and
# whatever follows it, so that every such path answers in Gemini's shape.
API_ROOTS = frozenset({"v1", "v1beta", "v1alpha", "upload", "download", "openai"})
# Probes and scrapers name no Host the site would allow (a pod's address), and need no session.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def is_api_path(path: str) -> bool:
    return path in PROBE_PATHS or path.lstrip("/").split("/", 1)[0] in API_ROOTS


class SiteHandler(ASGIHandler):
    """Without a thread per request.

    Django wraps every request in asgiref's ThreadSensitiveContext, which
    starts and joins a thread for the request's synchronous parts (at least
    Django's own database clean-up), even for async views. Without it,
    synchronous code (the ORM behind sync_to_async, the admin's sync views)
    runs on the one shared thread that Channels consumers already use.
    """

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)


class ApiHandler(SiteHandler):
    """The API paths: Django's request, view and response, without the handler's per-request machinery.

    Profiled at 50 clients on the relay path, Django's handler around the view
    cost most of what the relay itself did. What it did there, and what this
    handler does instead:

    - no middleware: each of Django's runs its hooks in a thread hop (about a
      dozen a call), and the API needs no session, CSRF token or messages;
    - the URL is resolved against the API's own URLconf
      (``gemproxy_site.api_urls``), not the admin's and the pages' first;
    - no request_started or request_finished signal, and so no thread hop to
      close the response: API views reach the database only through
      ``database_sync_to_async``, which cleans up around each use. Closing
      still releases what the response holds (a file being downloaded);
    - a body that comes in one piece (most calls) is read into memory, not
      into a SpooledTemporaryFile made for every request;
    - a path's resolution is remembered (``resolve_path``);
    - a stream keeps neither its head once sent nor its request body once the
      view returned it (``send_response``, ``_let_go_of_the_body``);
    - the client's disconnect cancels the request's own task, rather than two
      new tasks and an ``asyncio.wait`` a call: told by our server
      (``asgi_extensions.ON_DISCONNECT``), or under another server by one task
      waiting on ``receive``. The view sees the ``CancelledError`` where Django
      would raise it.
    """

    urlconf = "gemproxy_site.api_urls"

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        set_urlconf(request.urlconf)
        match = resolve_path(request.urlconf, request.path_info)
        request.resolver_match = match
        return match

    def load_middleware(self, is_async: bool = False) -> None:
        # What BaseHandler.load_middleware builds for an empty MIDDLEWARE.
        self._view_middleware: list = []
        self._template_response_middleware: list = []
        self._exception_middleware: list = []
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)

    async def read_body(self, receive):
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            return io.BytesIO(message.get("body", b""))
        return await super().read_body(_replaying(message, receive))

    async def handle(self, scope, receive, send) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            set_script_prefix(get_script_prefix(scope))
            request, refusal = self.create_request(scope, body_file)
            if request is None:
                await self.send_response(refusal, send)
                return
            request.urlconf = self.urlconf
            await self._serve(request, body_file, receive, send)
        finally:
            body_file.close()

    async def send_response(self, response: HttpResponseBase, send) -> None:
        """Django's, with the head read straight from the headers' store, and a stream letting go of its head once sent.

        An API answer carries about twenty headers; Django's ``send_response``
        reads each through its case-insensitive mapping (three Python calls a
        header) and checks its type again. A stream stays open as long as the
        model writes, and Django's keeps the response's headers and their
        encoded copy to its end: with 500 streams open, about 7 KiB of each
        stream's 31 KiB of Python objects, for a head that left at the start.
        """
        await send({"type": "http.response.start", "status": response.status_code, "headers": _head_of(response)})
        if not response.streaming:
            for chunk, last in self.chunk_bytes(response.content):
                await send({"type": "http.response.body", "body": chunk, "more_body": not last})
            return
        response.headers = ResponseHeaders({})
        async with aclosing(aiter(response)) as content:
            async for part in content:
                for chunk, _ in self.chunk_bytes(part):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body"})

    async def _serve(self, request: HttpRequest, body_file, receive, send) -> None:
        serving = asyncio.current_task()
        assert serving is not None
        disconnected = False

        def client_left() -> None:
            nonlocal disconnected
            disconnected = True
            serving.cancel()

        async def cancel_on_disconnect() -> None:
            if (await receive())["type"] == "http.disconnect":
                client_left()

        on_disconnect = request.scope.get("extensions", {}).get(ON_DISCONNECT)
        if on_disconnect is not None:
            # Our server says when the client leaves: no task per request waiting to hear it.
            on_disconnect(client_left)
            watch = None
        else:
            watch = asyncio.create_task(cancel_on_disconnect())
        response = None
        try:
            response = await self._middleware_chain(request)
            if response.streaming:
                _let_go_of_the_body(request, body_file)
            await self.send_response(response, send)
        except asyncio.CancelledError:
            if not disconnected:
                raise  # the server's, not the client's: let it through
        finally:
            if watch is not None:
                watch.cancel()
            if response is not None:
                _release(response)


# Paths remembered: a client calls a handful of models and methods; one that
# sends a new path each time only evicts the oldest, at the cost of Django's own resolve.
RESOLVED_PATHS = 1024
_resolved: OrderedDict[tuple[str, str], tuple[object, ResolverMatch]] = OrderedDict()


def resolve_path(urlconf: str, path: str) -> ResolverMatch:
    """Django's resolve of ``path``, remembered: it matched a dozen regexes and built a ResolverMatch per call (7%).

    A ResolverMatch is not changed by Django nor by a view (the view gets its
    arguments unpacked), so one serves every request for its path. An entry
    holds the resolver it came from: ``clear_url_caches`` (a changed
    ROOT_URLCONF in a test) makes a new one, and the entry no longer counts.
    A path that resolves to nothing raises Resolver404 each time, never remembered.
    """
    resolver = get_resolver(urlconf)
    key = (urlconf, path)
    entry = _resolved.get(key)
    if entry is not None and entry[0] is resolver:
        _resolved.move_to_end(key)
        return entry[1]
    match = resolver.resolve(path)
    _resolved[key] = (resolver, match)
    if len(_resolved) > RESOLVED_PATHS:
        _resolved.popitem(last=False)
    return match


def _replaying(first: dict, receive):
    """``receive``, with ``first`` (already received) given once more first."""
    pending = [first]

    async def replay() -> dict:
        return pending.pop() if pending else await receive()

    return replay


def _head_of(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    """The response's headers and cookies as ASGI sends them, as Django's send_response makes them.

    Django's ``ResponseHeaders`` keeps every name and value as text it has
    checked (ASCII names, latin-1 values), in ``_store`` by lower-cased name:
    read there, each header costs two encodes and no Python call.
    """
    head = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.headers._store.values()]
    head += ((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()) for cookie in response.cookies.values())
    return head


def _let_go_of_the_body(request: HttpRequest, body_file) -> None:
    """A stream's request body, read and sent on by the view, is not kept for as long as the answer streams.

    Django keeps the body it read (``_body``) and a file over it (``_stream``),
    and the handler the file it came in. Measured with 500 streams open, each
    sent a 20 KB prompt (the dispatcher letting go of its copy too): 42.8 KiB of
    Python objects per stream before, 23.2 after. Reading the body again after
    this raises Django's RawPostDataException, as reading it after its stream would.
    """
    body_file.close()
    stream = getattr(request, "_stream", None)
    if stream is not None:
        stream.close()
    request.__dict__.pop("_body", None)


def _release(response: HttpResponseBase) -> None:
    """What ``response.close()`` does but the request_finished signal (see ApiHandler)."""
    for closer in response._resource_closers:
        with contextlib.suppress(Exception):
            closer()
    response.closed = True


async def _request_started(sender, **kwargs) -> None:
    if sender is ApiHandler:
        return
    await sync_to_async(_clean_up_connections)()


def _clean_up_connections() -> None:
    reset_queries()
    close_old_connections()


def skip_start_of_request_clean_up_for_the_api() -> None:
    """No thread hop at the start of an API request.

    Django's database clean-up at the start of a request is two synchronous
    receivers, so every request pays a thread hop for them: measured, 0.5 to
    0.9 ms per relayed call on this machine. API requests reach the database
    only through database_sync_to_async, which cleans up around each use, and
    Django cleans up again at the end of every request. Other requests keep
    the clean-up, in one hop, as before.
    """
    request_started.disconnect(reset_queries)
    request_started.disconnect(close_old_connections)
    request_started.connect(_request_started, dispatch_uid="gemproxy.request_started")


def http_application():
    """One ASGI app for HTTP: the API paths to ApiHandler, everything else to the full site."""
    api, site = ApiHandler(), SiteHandler()

    async def route(scope, receive, send) -> None:
        path = scope["path"][len(scope.get("root_path", "")) :]
        handler = api if is_api_path(path) else site
        await handler(scope, receive, send)

    return route
