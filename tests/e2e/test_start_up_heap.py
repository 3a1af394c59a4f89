"""A real gateway leaves what its start-up made out of the garbage collector's later passes."""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.harness import Deployment, wait_until

FROZE = re.compile(r"froze (\d+) start-up objects out of the garbage collector's sight")


def test_a_serving_gateway_has_frozen_its_start_up_heap(tmp_path: Path) -> None:
    """Each full collection walked Django's and every module's objects: a 43 ms pause every 2,000 calls or so."""
    install = Deployment(tmp_path, {"LOG_LEVEL": "INFO"})
    try:
        gateway = install.start_gateway()
        wait_until(lambda: FROZE.search(gateway.process.log()) is not None, what="the freeze's log line")
        frozen = int(FROZE.search(gateway.process.log()).group(1))
        assert frozen > 50_000, "Django's models, URLconfs and modules are among them"
        assert gateway.health()["executors"] == 0, "and it answers"
    finally:
        install.stop()
