"""Random ids for what the relay makes per call (request, attempt, reply channel, lease, usage record)."""

from __future__ import annotations

import os


def new_id() -> str:
    """32 random hex digits, as ``uuid.uuid4().hex`` gave, without building a UUID: 0.5 us against 2 us.

    Five are made per relayed call. Nothing reads a version from them: they are
    opaque names, compared whole.
    """
    return os.urandom(16).hex()
