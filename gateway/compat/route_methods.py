"""What every compat route does before its surface is served: CORS preflight, the one method it takes.

Errors here are in the surface's shape (its ``error_body``), like every other
answer of that surface; every answer carries the API's headers (CORS, nosniff).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway.answer_headers import mark_api_answer, preflight

View = Callable[[HttpRequest], Awaitable[HttpResponse]]
ErrorBody = Callable[[int, str, str], dict]


def only(method: str, error_body: ErrorBody) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        async def answer(request: HttpRequest) -> HttpResponse:
            if request.method == "OPTIONS":
                response = preflight(request)
            elif request.method != method:
                message = f"Method {request.method} is not allowed here; use {method}."
                body = error_body(405, message, "invalid_request_error")
                response = HttpResponse(json.dumps(body), status=405, content_type="application/json")
                response["Allow"] = method
            else:
                response = await view(request)
            mark_api_answer(response)
            return response

        return answer

    return decorate
