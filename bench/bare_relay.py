"""The bare relay: a relay with nothing but the relay, to measure what any Python gateway must cost here.

    .venv/bin/python bench/bare_relay.py --port 8700

Not a product and never deployed. It speaks just enough of protocol v1
(docs/executor-protocol.md) to serve one headless executor (``executors.agent``):
the welcome with binary frames, a request frame carrying its body, and an answer
that comes as one frame (``response_start`` with its data and ``end``), which is
how the agent answers a unary call. No key, no limits, no usage record, no log
line, no Django: an aiohttp server handing each POST to the executor and its
answer back. ``bench/bench_bare_relay.py`` measures it beside the gateway, with the
same client, agent and stand-in, so that the gateway's figures read against what
this machine costs any Python relay, and not only against a target set elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from pathlib import Path

from aiohttp import WSMsgType, web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from executors import protocol

FORWARDED = ("content-type", "accept", "x-goog-api-client")


class BareRelay:
    def __init__(self) -> None:
        self.executor: web.WebSocketResponse | None = None
        self.waiting: dict[str, asyncio.Future[tuple[dict, bytes]]] = {}
        self.ids = (f"{n:x}" for n in itertools.count(1))

    async def executor_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        hello = protocol.loads((await ws.receive()).data)
        await ws.send_str(
            protocol.dumps(
                {
                    "type": "welcome",
                    "protocol": protocol.PROTOCOL_VERSION,
                    "executor_id": hello.get("executor_id", ""),
                    "account": "bare",
                    "heartbeat_interval": 3600.0,
                    "heartbeat_timeout": 3600.0,
                    "features": [protocol.FEATURE_BINARY_FRAMES],
                }
            )
        )
        self.executor = ws
        async for message in ws:
            if message.type is WSMsgType.BINARY:
                frame, data = protocol.split_binary_frame(message.data)
            elif message.type is WSMsgType.TEXT:
                frame, data = protocol.loads(message.data), b""
            else:
                break
            waiter = self.waiting.pop(frame.get("id", ""), None)
            if waiter is not None and not waiter.done() and frame["type"] in ("response_start", "error"):
                waiter.set_result((frame, data))
        self.executor = None
        return ws

    async def call(self, request: web.Request) -> web.Response:
        if self.executor is None:
            return web.json_response({"error": {"code": 503, "message": "no executor"}}, status=503)
        body = await request.read()
        task_id = next(self.ids)
        answer = self.waiting[task_id] = asyncio.get_running_loop().create_future()
        frame = {
            "type": "request",
            "id": task_id,
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "headers": {name: request.headers[name] for name in FORWARDED if name in request.headers},
            "body_chunks": 1 if body else 0,
        }
        if body:
            await self.executor.send_bytes(protocol.binary_frame({**frame, "data": body}))
        else:
            await self.executor.send_str(protocol.dumps(frame))
        head, data = await answer
        if head["type"] == "error" or not head.get("end"):
            # A stream, or a failure: the bare relay measures unary calls only.
            return web.json_response({"error": {"code": 502, "message": head["type"]}}, status=502)
        headers = {name: value for name, value in head["headers"].items() if name in ("content-type",)}
        return web.Response(body=data, status=head["status"], headers=headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    relay = BareRelay()
    app = web.Application()
    app.router.add_get(protocol.WEBSOCKET_PATH, relay.executor_socket)
    app.router.add_post("/{tail:.*}", relay.call)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
