"""The Batch API through gemproxy: create on one account, then every call about the batch pinned to it.

``models/{m}:batchGenerateContent`` (routed here by gateway.views), ``batches/{id}``
get and delete, ``batches/{id}:cancel`` and ``operations/{id}`` reach the upstream,
so they are async views; ``GET batches`` answers from the database (DRF).
Each call is authenticated, admitted against the key's limits and recorded
as usage like any Gemini call (``_handled``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from django.http import HttpRequest, HttpResponse
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import usage
from accounts.limits import Rejection, admit
from accounts.models import ProxyKey
from accounts.usage import UsageEvent
from executors.dispatcher import DispatchError
from executors.registry import get_registry
from gateway.answer_headers import JSON
from gateway.auth import authenticate
from gateway.errors import ApiError, backend_unavailable, invalid_argument, not_found
from gateway.payload import checked_body
from gateway.relay import BACKEND_ERRORS
from gateway.resources import ModelName, model_name, quoted
from gateway.views import gemini_api
from resources import batches, placements, references, replication, upstream
from resources.google_api import GoogleResourceView, Paging, listed
from resources.models import Batch, Placement

Work = Callable[[ProxyKey, bytes, UsageEvent], Awaitable[HttpResponse]]

# "files/abc123" or a file's full uri, as a batch may name its input file or a request its fileData.
_PROXY_FILE = re.compile(r"(?:^|/)files/([a-z0-9]+)$")


def _json_answer(payload: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(payload, indent=2, ensure_ascii=False), status=status, content_type=JSON)


async def _handled(
    request: HttpRequest, method: str, model: str, work: Work, *, reads_body: bool = True
) -> HttpResponse:
    """Authenticate, admit, run ``work``, and record the call whatever happens."""
    event = UsageEvent(outcome="ok", method=method, model=model, client_ip=request.META.get("REMOTE_ADDR", ""))
    started = time.monotonic()
    admission = None
    try:
        key = await authenticate(request)
        event.user_id, event.key_id = key.user_id, key.pk
        body = checked_body(request) if reads_body or request.body.strip() else b""
        event.request_bytes = len(body)
        try:
            admission = await admit(key, model=model, client_ip=event.client_ip, request_body=body)
        except Rejection as rejection:
            raise ApiError.from_rejection(rejection) from None
        response = await work(key, body, event)
        event.status_code = response.status_code
        event.response_bytes = len(response.content)
        if response.status_code >= 400 and event.outcome == "ok":
            event.outcome = "upstream_error"
        for name, value in admission.headers.items():
            response[name] = value
        return response
    except ApiError as error:
        event.outcome, event.status_code = error.outcome, error.http_status
        return error.response()
    except DispatchError as error:
        event.outcome, event.status_code = error.outcome, error.http_status
        return ApiError.from_dispatch(error).response()
    except BACKEND_ERRORS:
        unavailable = backend_unavailable()
        event.outcome, event.status_code = unavailable.outcome, unavailable.http_status
        return unavailable.response()
    except asyncio.CancelledError:
        event.outcome = "client_cancelled"
        raise
    finally:
        event.latency_ms = int((time.monotonic() - started) * 1000)
        if admission is not None:
            await admission.settle(event.total_tokens)
        await usage.arecord(event)


def _operation_of(answer: upstream.UpstreamAnswer) -> dict:
    try:
        operation = answer.json()
    except ValueError:
        operation = None
    if not isinstance(operation, dict) or not isinstance(operation.get("name"), str):
        raise ApiError(
            503, "UNAVAILABLE", "The upstream's answer about the batch could not be read.", outcome="upstream_error"
        )
    return operation


def _field(obj: Any, camel: str) -> Any:
    """A field as the SDK (camelCase) or a curl user (snake_case) names it."""
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get(re.sub(r"([A-Z])", lambda m: "_" + str(m.group(1)).lower(), camel))


# Create.


@gemini_api("POST")
async def batch_generate_content(request: HttpRequest, version: str, resource: str, action: str) -> HttpResponse:
    """``models/{m}:batchGenerateContent``, a model action routed here ahead of gateway.views.model_action."""
    return await create_batch(request, version, model_name(resource))


async def create_batch(request: HttpRequest, version: str, model: ModelName) -> HttpResponse:
    async def work(key: ProxyKey, body: bytes, event: UsageEvent) -> HttpResponse:
        payload = json.loads(body)
        batch = _field(payload, "batch")
        if not isinstance(batch, dict):
            raise invalid_argument('Invalid JSON payload received. The body must be {"batch": {...}}.')
        config = _field(batch, "inputConfig")
        if not isinstance(config, dict):
            raise invalid_argument("batch.input_config is required.")
        accounts = None
        input_file = _member_input_file(config)  # before any rewriting, which may change ``config``
        origins = references.gateway_origins(request)
        file_ids = _referenced_files(payload, config, origins)
        if file_ids:
            account_id, payload = await _place_files(key, payload, file_ids, origins)
            body, accounts = json.dumps(payload).encode(), frozenset({account_id})
        answer = await upstream.call(
            "POST", f"/{version}/{model}:batchGenerateContent", body=body, accounts=accounts, model=model.model_id
        )
        event.executor_account = answer.account_label
        if not answer.ok:
            return HttpResponse(answer.body, status=answer.status, content_type=JSON)
        operation = _operation_of(answer)
        created = await batches.acreate(key, str(model), operation, answer.account_id, input_file)
        return _json_answer(created.last_seen)

    return await _handled(request, "batchGenerateContent", model.model_id, work)


def _referenced_files(payload: dict, config: dict, origins: Collection[str]) -> set[str]:
    """The ids of the proxy files the batch refers to: its input file, and any fileData in its requests."""
    found: set[str] = set()
    file_name = _field(config, "fileName")
    if file_name is not None:
        match = _PROXY_FILE.search(file_name) if isinstance(file_name, str) else None
        if match is None:
            raise invalid_argument(f"Invalid input file name {quoted(str(file_name))}: it must be files/{{id}}.")
        found.add(match.group(1))
    found |= {reference.resource_id for reference in references.file_references(payload, origins)}
    return found


def _member_input_file(config: dict) -> str:
    file_name = _field(config, "fileName")
    match = _PROXY_FILE.search(file_name) if isinstance(file_name, str) else None
    return f"files/{match.group(1)}" if match else ""


async def _place_files(key: ProxyKey, payload: dict, file_ids: set[str], origins: Collection[str]) -> tuple[int, dict]:
    """One connected account holding (or given) every file, and the body rewritten to that account's names."""
    files = list((await references.owned_files(file_ids, key.user_id)).values())
    live = {row["account_id"] for row in await get_registry().snapshot()}
    if not live:
        raise ApiError(503, "UNAVAILABLE", "No executor is available to serve this request. Try again later.")
    holding = await placements.aholding_all(batches.FILE_KIND, file_ids) & live
    account_id = min(holding or live)
    placed = await replication.ensure_files_on(account_id, files)
    payload = references.rewrite_for(payload, placed, origins)
    return account_id, _with_upstream_input_file(payload, placed)


def _with_upstream_input_file(payload: dict, placed: dict[str, Placement]) -> dict:
    """``payload`` whose ``batch.inputConfig.fileName`` names the account's copy (a batch field, not a fileData)."""
    batch = dict(_field(payload, "batch"))
    config = dict(_field(batch, "inputConfig"))
    match = _PROXY_FILE.search(str(_field(config, "fileName") or ""))
    if match is None or match.group(1) not in placed:
        return payload
    config.pop("file_name", None)
    config["fileName"] = placed[match.group(1)].upstream_name
    batch.pop("input_config", None)
    batch["inputConfig"] = config
    return {**payload, "batch": batch}


# About one batch.


async def _about(
    request: HttpRequest,
    method: str,
    batch_id: str,
    act: Callable[[Batch, Placement, UsageEvent], Awaitable[HttpResponse]],
    *,
    reads_body: bool = False,
) -> HttpResponse:
    async def work(key: ProxyKey, body: bytes, event: UsageEvent) -> HttpResponse:
        batch, placement = await batches.apinned(key.user_id, batch_id)
        event.model = batch.model.removeprefix("models/")
        event.executor_account = placement.account.label
        await batches.require_executor(placement, batch.name)
        return await act(batch, placement, event)

    return await _handled(request, method, "", work, reads_body=reads_body)


# A registry that does not honour ``Task.accounts`` may hand the call to another account.
_ATTEMPTS_FOR_THE_PINNED_ACCOUNT = 3


async def _pinned_call(placement: Placement, batch: Batch, method: str, path: str) -> upstream.UpstreamAnswer:
    for _ in range(_ATTEMPTS_FOR_THE_PINNED_ACCOUNT):
        answer = await upstream.call(method, path, accounts=frozenset({placement.account_id}))
        # Only that account knows the batch; an answer from any other says nothing about it.
        if answer.account_id == placement.account_id:
            return answer
    raise batches.account_unavailable(placement, batch.name)


def _relayed_error(answer: upstream.UpstreamAnswer, batch: Batch, placement: Placement) -> HttpResponse:
    body = answer.body.replace(placement.upstream_name.encode(), batch.name.encode())
    return HttpResponse(body, status=answer.status, content_type=JSON)


async def _get(version: str, batch: Batch, placement: Placement, event: UsageEvent) -> HttpResponse:
    answer = await _pinned_call(placement, batch, "GET", f"/{version}/batches/{batches.upstream_id(placement)}")
    if not answer.ok:
        return _relayed_error(answer, batch, placement)
    observed = await batches.aobserve(batch, placement, _operation_of(answer))
    _count_tokens(observed, event)
    return _json_answer(observed.operation)


def _count_tokens(observed: batches.Observed, event: UsageEvent) -> None:
    if observed.newly_succeeded:
        # The call that first sees the batch done carries what it cost, once.
        spent = batches.tokens_spent(observed.operation)
        event.prompt_tokens, event.candidates_tokens = spent["promptTokenCount"], spent["candidatesTokenCount"]
        event.thoughts_tokens, event.cached_tokens = spent["thoughtsTokenCount"], spent["cachedContentTokenCount"]


@gemini_api("GET", "DELETE")
async def batch(request: HttpRequest, version: str, batch_id: str) -> HttpResponse:
    if request.method == "DELETE":
        return await _about(request, "batches.delete", batch_id, lambda b, p, e: _delete(version, b, p))
    return await _about(request, "batches.get", batch_id, lambda b, p, e: _get(version, b, p, e))


async def _delete(version: str, batch: Batch, placement: Placement) -> HttpResponse:
    answer = await _pinned_call(placement, batch, "DELETE", f"/{version}/batches/{batches.upstream_id(placement)}")
    if answer.ok or answer.status == 404:  # deleted now, or gone upstream already: gone here too
        await batches.aforget(batch)
    if not answer.ok:
        return _relayed_error(answer, batch, placement)
    return _json_answer({})


@gemini_api("POST")
async def cancel_batch(request: HttpRequest, version: str, batch_id: str) -> HttpResponse:
    async def cancel(batch: Batch, placement: Placement, event: UsageEvent) -> HttpResponse:
        path = f"/{version}/batches/{batches.upstream_id(placement)}"
        answer = await _pinned_call(placement, batch, "POST", f"{path}:cancel")
        if not answer.ok:
            return _relayed_error(answer, batch, placement)
        # Cancel answers nothing about the state; ask, so that the list shows it.
        try:
            after = await _pinned_call(placement, batch, "GET", path)
            if after.ok:
                _count_tokens(await batches.aobserve(batch, placement, _operation_of(after)), event)
        except (ApiError, DispatchError):
            pass  # the next get will tell
        return _json_answer({})

    return await _about(request, "batches.cancel", batch_id, cancel)


@gemini_api("POST")
async def batch_action(request: HttpRequest, version: str, batch_id: str, action: str) -> HttpResponse:
    raise not_found(f"Method {quoted(action)} is not supported on batches.")


# Long-running operations: the Batch API's operations are its batches, named batches/{id}
# (the SDK's operations.get asks GET /{v}/{operation.name}). gemproxy relays no other
# long-running method, so an operation id is a batch id, pinned the same way.


@gemini_api("GET")
async def operation(request: HttpRequest, version: str, operation_id: str) -> HttpResponse:
    return await _about(request, "operations.get", operation_id, lambda b, p, e: _get(version, b, p, e))


@gemini_api("GET")
async def model_operation(request: HttpRequest, version: str, resource: str, operation_id: str) -> HttpResponse:
    raise not_found(
        f"Operation {quoted(resource + '/operations/' + operation_id)} was not found: gemproxy relays no "
        "long-running model methods; a batch's operation is named batches/{id}."
    )


# The list, from the database.


class BatchList(GoogleResourceView):
    """``GET /{v}/batches``: the member's batches, newest first, as their latest operations."""

    paging = Paging(default_size=50, max_size=1000)

    def get(self, request: Request, version: str) -> Response:
        started = time.monotonic()
        rows, next_page_token = self.paging.page(request, self.owned(Batch.objects.all()))
        response = listed("operations", [_listed(row) for row in rows], next_page_token)
        usage.record(
            UsageEvent(
                outcome="ok",
                method="batches.list",
                status_code=200,
                user_id=self.key.user_id,
                key_id=self.key.pk,
                client_ip=request.META.get("REMOTE_ADDR", ""),
                latency_ms=int((time.monotonic() - started) * 1000),
            )
        )
        return response


def _listed(row: Batch) -> dict:
    if row.last_seen:
        return row.last_seen
    return {
        "name": row.name,
        "metadata": {
            "@type": batches.BATCH_TYPE,
            "model": row.model,
            "displayName": row.display_name,
            "state": row.state,
        },
    }
