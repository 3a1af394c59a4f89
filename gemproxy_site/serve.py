"""Run gemproxy under Daphne: ``python -m gemproxy_site.serve [daphne options]``.

The same as ``daphne gemproxy_site.asgi:application`` except that:

- HTTP requests are parsed by llhttp and checked where the bytes enter, before
  the application sees anything (``gemproxy_site.http_channel``): a body limit
  per route (``gemproxy_site.body_limits``), absolute-form request URIs served
  as their path, targets no URI could hold refused; a WebSocket upgrade is
  handed to Daphne's protocol, whose applications may take each message as it
  arrives rather than await ``receive`` for it, and whose frames are read and
  sent without autobahn's per-frame detours (``gemproxy_site.websocket_server``);
- the access log never shows a secret, whatever its spelling, nor a forged
  line (``gemproxy_site.access_log``);
- a streamed answer waits for the client to take it (back-pressure), instead of
  piling up in memory when it is made faster than it is read, and a body is
  read as fast as the application takes it;
- per-request work measured as useless on the relay path is skipped;
- the event loop under Twisted's asyncio reactor is uvloop's
  (``gemproxy_site.event_loop``), and the reactor sends what a connection
  writes in the same turn of the loop (``gemproxy_site.reactor``);
- autobahn's debug lines, never printed, are not coloured either, and an
  executor's small frames are unmasked without a native masker each
  (``gemproxy_site.websocket_masking``);
- what start-up made (Django, every module, about 100,000 objects) is frozen
  out of the garbage collector's sight once the server runs (``freeze_start_up_heap``).
"""

from __future__ import annotations

import gc
import logging
import os
import sys

from gemproxy_site.event_loop import use_uvloop

logger = logging.getLogger("gemproxy_site.serve")  # not __main__, which it is when run with -m


def freeze_start_up_heap() -> None:
    """Leave the objects start-up made out of every later collection.

    They live as long as the process, yet each full collection walked them
    all: measured at 1 client, one such collection every 2,000 calls or so took
    43 ms (a pause every call in flight waits out) and 2% of the gateway's CPU.
    """
    gc.collect()
    gc.freeze()
    logger.info("froze %d start-up objects out of the garbage collector's sight", gc.get_freeze_count())


def main(argv: list[str] | None = None, application: str = "gemproxy_site.asgi:application") -> None:
    """``application``: another ASGI app served the same way (``bench/bench_instructions.py --floor``)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gemproxy_site.settings")
    use_uvloop()
    from gemproxy_site import reactor

    # Before daphne.server's import, which keeps an asyncio reactor already installed.
    reactor.install()
    # Imported only now: daphne.server makes its event loop when first imported.
    from autobahn import util as autobahn_util
    from daphne import cli
    from daphne import server as daphne_server

    from gemproxy_site import websocket_masking, websocket_server
    from gemproxy_site.access_log import RedactingAccessLog
    from gemproxy_site.http_channel import HttpFactory

    # Daphne builds its access log from this name inside CommandLineInterface.run.
    cli.AccessLogGenerator = RedactingAccessLog
    # Daphne's server builds its HTTP factory from this name: requests are parsed and checked by ours.
    daphne_server.HTTPFactory = HttpFactory
    # WebSocket applications may take their messages as they arrive (asgi_extensions.RECEIVE_INTO), and their
    # frames leave without autobahn's detour (websocket_server: frame_now, LeanWebSocketProtocol).
    cli.CommandLineInterface.server_class = websocket_server.Server
    # Here, not in asgi.py: Django's test client relies on the usual receivers.
    from gemproxy_site.handlers import skip_start_of_request_clean_up_for_the_api

    skip_start_of_request_clean_up_for_the_api()
    # Autobahn builds the arguments of its debug lines for every WebSocket read
    # and write, debug on or off, and colours them through click whenever click
    # is importable (a test dependency): 2 to 3% of the gateway's CPU. Plain text
    # is what a production install, without click, gets anyway.
    autobahn_util._HAS_CLICK = False
    websocket_masking.install()
    from twisted.internet import reactor as running

    # Once Daphne has loaded the application (Django's set-up, every module) and serves.
    running.callWhenRunning(freeze_start_up_heap)
    args = list(sys.argv[1:] if argv is None else argv)
    cli.CommandLineInterface().run([*args, application])


if __name__ == "__main__":
    main()
