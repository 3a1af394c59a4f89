"""uvloop under Daphne: the same Twisted asyncio reactor on a faster event loop.

Daphne builds its event loop when ``daphne.server`` is first imported
(``asyncio.new_event_loop()``) and installs Twisted's asyncio reactor on it, so
the policy must be set before that import. Twisted's reactor only uses
``add_reader``/``add_writer`` and timers, which uvloop implements.
``GEMPROXY_UVLOOP=false`` keeps the standard loop (to compare, or to debug).
"""

from __future__ import annotations

import asyncio
import os


def use_uvloop() -> bool:
    """Make new event loops uvloop's, unless turned off; whether it did."""
    if os.environ.get("GEMPROXY_UVLOOP", "true").lower() in ("0", "false", "no", "off"):
        return False
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
