"""`python -m executors.standin --port 8601`: serve the stand-in until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from executors.standin.server import serve_forever


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m executors.standin",
        description="gemproxy's local stand-in for the Gemini API (not Google): for the demo, tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8601, help="0: any free port (the URL printed says which)")
    args = parser.parse_args()
    # SIGTERM ends it as quietly as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(serve_forever(args.host, args.port))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        sys.exit(f"python -m executors.standin: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")


if __name__ == "__main__":
    main()
