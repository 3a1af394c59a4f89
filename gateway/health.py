"""A health check for load balancers and scripts: is the gateway up, and can it serve?"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from django.http import HttpRequest, JsonResponse

from executors.registry import Cooldown, get_registry


def _cooldown_row(cooldown: Cooldown, now: float) -> dict:
    # Labels and model names only: nothing here helps anyone call the upstream.
    return {
        "account": cooldown.account_label,
        "model": cooldown.model,
        "seconds_left": max(1, math.ceil(cooldown.until - now)),
        "until": datetime.fromtimestamp(cooldown.until, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


async def healthz(request: HttpRequest) -> JsonResponse:
    registry = get_registry()
    executors = await registry.snapshot()
    cooldowns = await registry.cooldowns()
    now = time.time()
    slots = sum(row["max_concurrency"] for row in executors)
    busy = sum(row["in_flight"] for row in executors)
    # 503 tells a load balancer that calls would wait for an executor right now.
    # Cooldowns do not: another gateway would find the same accounts cooling down.
    return JsonResponse(
        {
            "status": "ok" if executors else "no_executors",
            "executors": len(executors),
            "slots": slots,
            "busy": busy,
            "cooldowns": [_cooldown_row(cooldown, now) for cooldown in cooldowns],
        },
        status=200 if executors else 503,
    )
