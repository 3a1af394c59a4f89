"""A health check for load balancers and scripts: is the gateway up, and can it serve?"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from executors.registry import get_registry


async def healthz(request: HttpRequest) -> JsonResponse:
    executors = await get_registry().snapshot()
    slots = sum(row["max_concurrency"] for row in executors)
    busy = sum(row["in_flight"] for row in executors)
    # 503 tells a load balancer that calls would wait for an executor right now.
    return JsonResponse(
        {"status": "ok" if executors else "no_executors", "executors": len(executors), "slots": slots, "busy": busy},
        status=200 if executors else 503,
    )
