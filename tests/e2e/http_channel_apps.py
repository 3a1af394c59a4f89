"""ASGI applications that behave as no Django view would, served by ``gemproxy_site.serve`` for test_http_channel."""

from __future__ import annotations

import asyncio
import json

from gemproxy_site.asgi_extensions import RECEIVE_INTO


async def read_body(receive) -> list[bytes]:
    pieces = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("the client left")
        pieces.append(message["body"])
        if not message.get("more_body"):
            return pieces


async def answer_json(send, value: dict, status: int = 200) -> None:
    body = json.dumps(value).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def echo(scope, receive, send) -> None:
    """What the application was given: the body's size and the scope's parts a test looks at."""
    body = b"".join(await read_body(receive))
    await answer_json(
        send,
        {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode(),
            "http_version": scope["http_version"],
            "headers": [[name.decode(), value.decode("latin-1")] for name, value in scope["headers"]],
            "body": body.decode("latin-1"),
            "size": len(body),
        },
    )


async def stream(scope, receive, send) -> None:
    """Three pieces, no Content-Length: chunked."""
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for piece in (b"one ", b"two ", b"three"):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def slow_reader(scope, receive, send) -> None:
    """Takes the first piece of the body, waits, then takes the rest."""
    first = await receive()
    await asyncio.sleep(1.5)
    second = await receive()
    rest = [] if not second.get("more_body") else await read_body(receive)
    total = len(first["body"]) + len(second["body"]) + sum(map(len, rest))
    await answer_json(send, {"second": len(second["body"]), "total": total})


async def firehose(scope, receive, send) -> None:
    """256 MiB, as fast as the server lets it go."""
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    piece = b"x" * (1024 * 1024)
    for _ in range(256):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def raises(scope, receive, send) -> None:
    await read_body(receive)
    raise RuntimeError("a bug in the application")


async def sleeps(scope, receive, send) -> None:
    await read_body(receive)
    await asyncio.sleep(30)


async def no_answer(scope, receive, send) -> None:
    await read_body(receive)


async def half_answer(scope, receive, send) -> None:
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"the first half", "more_body": True})


# A header that would split the answer, by the query string that asks for it.
BAD_HEADERS = {
    b"": (b"x-injected", b"a\r\nSet-Cookie: forged=1"),
    b"lf": (b"x-injected", b"a\nSet-Cookie: forged=1"),
    b"cr": (b"x-injected", b"a\rSet-Cookie: forged=1"),
    b"name": (b"x-injected\nSet-Cookie", b"forged=1"),
    b"name-cr": (b"x-injected\rSet-Cookie", b"forged=1"),
}


async def bad_header(scope, receive, send) -> None:
    await read_body(receive)
    headers = [(b"content-type", b"text/plain"), BAD_HEADERS[scope["query_string"]]]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"never"})


async def told_of_leaving(scope, receive, send) -> None:
    """Asks to be told when its client leaves (gemproxy_site.asgi_extensions), and says so in the server's log."""
    await read_body(receive)
    name = scope["query_string"].decode()
    scope["extensions"]["gemproxy.on_disconnect"](lambda: print(f"told: {name} left", flush=True))
    if name.startswith("answered"):
        await answer_json(send, {"told": name})
    else:
        await asyncio.sleep(30)


async def websocket_echo(scope, receive, send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    message = await receive()
    await send({"type": "websocket.send", "text": f"echo: {message.get('text')}"})
    await send({"type": "websocket.close"})


async def websocket_by_hand(scope, receive, send) -> None:
    """Takes its messages as the server hands them over (gemproxy_site.asgi_extensions), never awaiting ``receive``."""
    arrived: asyncio.Queue[dict] = asyncio.Queue()
    scope["extensions"][RECEIVE_INTO](arrived.put_nowait)
    assert (await arrived.get())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    for _ in range(2):
        message = await arrived.get()
        await send({"type": "websocket.send", "text": f"by hand: {message.get('text')}"})
    await send({"type": "websocket.close"})


ROUTES = {
    "/stream": stream,
    "/v1beta/slow-reader": slow_reader,  # under the API's body limit (20 MiB), not the site's
    "/firehose": firehose,
    "/raises": raises,
    "/no-answer": no_answer,
    "/sleeps": sleeps,
    "/half-answer": half_answer,
    "/bad-header": bad_header,
    "/told-of-leaving": told_of_leaving,
}


async def application(scope, receive, send) -> None:
    if scope["type"] == "websocket":
        await (websocket_by_hand if scope["path"] == "/ws/by-hand" else websocket_echo)(scope, receive, send)
    elif scope["type"] == "http":
        await ROUTES.get(scope["path"], echo)(scope, receive, send)
