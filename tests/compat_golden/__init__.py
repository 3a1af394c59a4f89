"""Golden cases of the compat translators: reviewed inputs and outputs, loaded by the tests."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent


def load(name: str) -> list[dict]:
    return json.loads((HERE / name).read_text())
