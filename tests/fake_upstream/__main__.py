"""`python -m tests.fake_upstream --port 8601`: serve the fake until interrupted."""

from __future__ import annotations

import argparse
import asyncio

from tests.fake_upstream.server import _serve_forever


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake Gemini API for tests and benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8601)
    args = parser.parse_args()
    try:
        asyncio.run(_serve_forever(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
