"""The stand-in's Batch API, as Google's behaves: batches are long-running operations owned by one account.

- ``POST /{v}/models/{m}:batchGenerateContent`` with ``{"batch": {"displayName",
  "inputConfig": {"requests": {"requests": [{"request", "metadata"}]}} | {"fileName"}}}``
  answers an operation named ``batches/{id}`` whose metadata is a
  ``GenerateContentBatch`` (``@type`` ...v1main.GenerateContentBatch).
- Its state moves BATCH_STATE_PENDING -> RUNNING -> SUCCEEDED over ``delays``
  (seconds, configurable, read when the batch is created). A done batch has
  ``done: true``, ``metadata.output`` and the same output as ``response``.
- Output: ``inlinedResponses.inlinedResponses[]`` (each ``response`` or ``error``,
  with the request's ``metadata``) for inline requests; for an input file, a
  ``responsesFile`` (``files/{id}``, JSONL with one line per input line, its ``key``
  kept), downloadable at ``/download/{v}/files/{id}:download?alt=media``.
- ``GET batches``, ``GET batches/{id}``, ``POST batches/{id}:cancel`` (-> CANCELLED),
  ``DELETE batches/{id}``. A batch (or file) of another account: 403
  PERMISSION_DENIED; unknown: 404 NOT_FOUND.

The account is the caller's API key (AI Studio's environment sends none: one
anonymous account). A request whose text holds ``#error=CODE`` gets that error as
its result, in ``google.rpc.Status`` form. File references are not validated:
``input_file`` (set by whoever keeps the stand-in's files) gives an input file's
bytes; without it, or for a file it does not know, the batch ends FAILED.
"""

from __future__ import annotations

import json
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from executors.standin.answers import Generation
from executors.standin.errors import _DEFAULT_MESSAGES, GoogleError
from executors.standin.prompts import Prompt, get_field

BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
TERMINAL = frozenset({"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"})
# google.rpc.Code of each HTTP status the stand-in answers with.
_RPC_CODES = {400: 3, 403: 7, 404: 5, 409: 6, 429: 8, 500: 13, 503: 14, 504: 4}
_ID_ALPHABET = string.ascii_lowercase + string.digits
_MAX_PAGE_SIZE = 1000
_DEFAULT_PAGE_SIZE = 50

InputFile = Callable[[str, str], bytes | None]  # (account, "files/..."): the file's bytes, or None


def _new_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


def _rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def account_of(request: web.Request) -> str:
    return request.headers.get("x-goog-api-key") or request.query.get("key") or ""


@dataclass
class UpstreamBatch:
    id: str
    account: str
    model: str
    display_name: str
    created: float
    pending_for: float
    running_for: float
    items: list[dict[str, Any]]  # inline: [{"request", "metadata"}]; file: filled when it runs
    input_file: str = ""
    cancelled_at: float | None = None
    failure: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    responses_file: str = ""
    updated: float = 0.0

    @property
    def name(self) -> str:
        return f"batches/{self.id}"

    def state(self, now: float) -> str:
        if self.cancelled_at is not None:
            return "BATCH_STATE_CANCELLED"
        if self.failure is not None:
            return "BATCH_STATE_FAILED"
        if now < self.created + self.pending_for:
            return "BATCH_STATE_PENDING"
        if now < self.created + self.pending_for + self.running_for:
            return "BATCH_STATE_RUNNING"
        return "BATCH_STATE_SUCCEEDED"

    def state_changed_at(self, now: float) -> float:
        state = self.state(now)
        if state == "BATCH_STATE_CANCELLED":
            assert self.cancelled_at is not None
            return self.cancelled_at
        if state == "BATCH_STATE_PENDING":
            return self.created
        if state == "BATCH_STATE_RUNNING":
            return self.created + self.pending_for
        return self.created + self.pending_for + self.running_for


@dataclass
class GeneratedFile:
    name: str
    account: str
    data: bytes
    mime_type: str = "application/jsonl"


@dataclass
class BatchService:
    """All accounts' batches and the files they made; ``delays`` = (pending, running) seconds for new ones."""

    delays: tuple[float, float] = (1.0, 1.0)
    disclose: bool = False
    input_file: InputFile | None = None
    batches: dict[str, UpstreamBatch] = field(default_factory=dict)
    files: dict[str, GeneratedFile] = field(default_factory=dict)

    def routes(self, app: web.Application, versions: tuple[str, ...]) -> None:
        for version in versions:
            app.router.add_get(f"/{version}/batches", self.list_batches)
            app.router.add_get(f"/{version}/batches/{{batch_id}}", self.get)
            app.router.add_delete(f"/{version}/batches/{{batch_id}}", self.delete)
            app.router.add_post(f"/{version}/batches/{{batch_id:[a-z0-9]+}}:cancel", self.cancel)
            # Google serves media from the download host path and, for the SDK, from the plain one.
            app.router.add_get(f"/download/{version}/files/{{file_id}}:download", self.download)
            app.router.add_get(f"/{version}/files/{{file_id:[a-z0-9-]+}}:download", self.download)

    # models/{m}:batchGenerateContent, called by the server's model-method dispatch.

    async def create(self, request: web.Request, model: dict, payload: dict) -> web.Response:
        if "batchGenerateContent" not in model["supportedGenerationMethods"]:
            version = request.path.split("/")[1]
            raise GoogleError(
                404,
                f"{model['name']} is not found for API version {version}, or is not supported for "
                "batchGenerateContent. Call ListModels to see the list of available models and their "
                "supported methods.",
            )
        batch = get_field(payload, "batch")
        if not isinstance(batch, dict):
            raise GoogleError(400, 'Invalid JSON payload received. Unknown name "": the body must be {"batch": {...}}.')
        display_name = get_field(batch, "displayName") or ""
        if not isinstance(display_name, str):
            raise GoogleError(400, "Invalid value at 'batch.display_name' (TYPE_STRING).")
        config = get_field(batch, "inputConfig")
        if not isinstance(config, dict):
            raise GoogleError(400, "batch.input_config is required.")
        file_name = get_field(config, "fileName")
        wrapper = get_field(config, "requests")
        if (file_name is None) == (wrapper is None):
            raise GoogleError(
                400, "Exactly one of batch.input_config.file_name or batch.input_config.requests must be set."
            )
        items: list[dict[str, Any]] = []
        if file_name is not None:
            if not isinstance(file_name, str) or not file_name.startswith("files/"):
                raise GoogleError(400, f"Invalid file name {json.dumps(file_name)}: it must look like files/{{id}}.")
        else:
            requests = get_field(wrapper, "requests") if isinstance(wrapper, dict) else None
            if not isinstance(requests, list) or not requests:
                raise GoogleError(400, "batch.input_config.requests.requests must hold at least one request.")
            for index, item in enumerate(requests):
                if not isinstance(item, dict) or not isinstance(get_field(item, "request"), dict):
                    raise GoogleError(400, f"batch.input_config.requests.requests[{index}].request is required.")
                metadata = get_field(item, "metadata")
                if metadata is not None and not isinstance(metadata, dict):
                    raise GoogleError(
                        400, f"Invalid value at 'batch.input_config.requests.requests[{index}].metadata'."
                    )
                items.append({"request": get_field(item, "request"), "metadata": metadata})
        now = time.time()
        pending, running = self.delays
        created = UpstreamBatch(
            id=_new_id(),
            account=account_of(request),
            model=model["name"],
            display_name=display_name,
            created=now,
            pending_for=pending,
            running_for=running,
            items=items,
            input_file=file_name or "",
            updated=now,
        )
        self.batches[created.id] = created
        return _ok(self._operation(created, now))

    # batches/...

    async def get(self, request: web.Request) -> web.Response:
        batch = self._owned(request)
        return _ok(self._operation(batch, time.time()))

    async def cancel(self, request: web.Request) -> web.Response:
        batch = self._owned(request)
        now = time.time()
        if batch.state(now) in TERMINAL:
            raise GoogleError(400, f"Batch {batch.name} is already in a terminal state and cannot be cancelled.")
        batch.cancelled_at = now
        return _ok({})

    async def delete(self, request: web.Request) -> web.Response:
        batch = self._owned(request)
        del self.batches[batch.id]
        return _ok({})

    async def list_batches(self, request: web.Request) -> web.Response:
        page_size = _page_size(request)
        token = request.query.get("pageToken") or "0"
        if not token.isdigit():
            raise GoogleError(400, "Invalid page token.")
        account = account_of(request)
        now = time.time()
        mine = sorted((batch for batch in self.batches.values() if batch.account == account), key=lambda b: -b.created)
        start = int(token)
        body: dict[str, Any] = {}
        page = mine[start : start + page_size]
        if page:
            body["operations"] = [self._operation(batch, now) for batch in page]
        if start + page_size < len(mine):
            body["nextPageToken"] = str(start + page_size)
        return _ok(body)

    async def download(self, request: web.Request) -> web.Response:
        if request.query.get("alt") != "media":
            raise GoogleError(400, "Only alt=media is supported for files.download.")
        name = f"files/{request.match_info['file_id']}"
        stored = self.files.get(name)
        if stored is None:
            raise GoogleError(404, f"File {name} not found.")
        if stored.account != account_of(request):
            raise GoogleError(
                403,
                f"You do not have permission to access the File {request.match_info['file_id']} or it may not exist.",
            )
        return web.Response(body=stored.data, content_type=stored.mime_type)

    # Inside.

    def _owned(self, request: web.Request) -> UpstreamBatch:
        batch_id = request.match_info["batch_id"]
        batch = self.batches.get(batch_id)
        if batch is None:
            raise GoogleError(404, f"Batch batches/{batch_id} not found.")
        if batch.account != account_of(request):
            raise GoogleError(403, f"You do not have permission to access the batch batches/{batch_id}.")
        return batch

    def _operation(self, batch: UpstreamBatch, now: float) -> dict[str, Any]:
        state = batch.state(now)
        if state == "BATCH_STATE_SUCCEEDED" and batch.output is None:
            self._run(batch)
            state = batch.state(now)
        changed = max(batch.updated, batch.state_changed_at(now))
        metadata: dict[str, Any] = {
            "@type": BATCH_TYPE,
            "model": batch.model,
            "displayName": batch.display_name,
            "createTime": _rfc3339(batch.created),
            "updateTime": _rfc3339(changed),
            "batchStats": self._stats(batch, state),
            "state": state,
            "name": batch.name,
        }
        if batch.input_file:
            metadata["inputConfig"] = {"fileName": batch.input_file}
        operation: dict[str, Any] = {"name": batch.name, "metadata": metadata}
        if state in TERMINAL:
            metadata["endTime"] = _rfc3339(changed)
            operation["done"] = True
        if state == "BATCH_STATE_SUCCEEDED" and batch.output is not None:
            metadata["output"] = batch.output
            operation["response"] = {"@type": OUTPUT_TYPE, **batch.output}
        if state == "BATCH_STATE_FAILED" and batch.failure is not None:
            operation["error"] = batch.failure
        return operation

    def _stats(self, batch: UpstreamBatch, state: str) -> dict[str, str]:
        count = len(batch.items)
        stats = {"requestCount": str(count)}
        if state == "BATCH_STATE_SUCCEEDED":
            failed = sum(1 for item in batch.items if "error" in item)
            if count - failed:
                stats["successfulRequestCount"] = str(count - failed)
            if failed:
                stats["failedRequestCount"] = str(failed)
        elif state in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING") and count:
            stats["pendingRequestCount"] = str(count)
        return stats

    def _run(self, batch: UpstreamBatch) -> None:
        """Work out every result, once, when the batch is first seen succeeded."""
        if batch.input_file:
            lines = self._input_lines(batch)
            if lines is None:
                return
            batch.items = lines
        for item in batch.items:
            item.update(self._answer(batch, item.get("request")))
        if batch.input_file:
            name = f"files/{_new_id()}"
            body = b"".join(
                json.dumps(_file_line(item), separators=(",", ":")).encode() + b"\n" for item in batch.items
            )
            self.files[name] = GeneratedFile(name, batch.account, body)
            batch.responses_file = name
            batch.output = {"responsesFile": name}
        else:
            batch.output = {"inlinedResponses": {"inlinedResponses": [_inlined(item) for item in batch.items]}}

    def _input_lines(self, batch: UpstreamBatch) -> list[dict[str, Any]] | None:
        data = self.input_file(batch.account, batch.input_file) if self.input_file else None
        if data is None:
            batch.failure = {"code": 5, "message": f"Input file {batch.input_file} was not found."}
            return None
        lines: list[dict[str, Any]] = []
        for number, raw in enumerate(data.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                line = None
            if not isinstance(line, dict) or not isinstance(get_field(line, "request"), dict):
                batch.failure = {"code": 3, "message": f"Line {number} of {batch.input_file} is not a valid request."}
                return None
            lines.append({"key": line.get("key"), "request": get_field(line, "request")})
        return lines

    def _answer(self, batch: UpstreamBatch, request: Any) -> dict[str, Any]:
        prompt = Prompt.read(get_field(request, "contents"), get_field(request, "systemInstruction"))
        code = prompt.directives.error
        if code:
            message = _DEFAULT_MESSAGES.get(code, f"Fake error {code} requested by #error.")
            return {"error": {"code": _RPC_CODES.get(code, 2), "message": message}}
        model_id = batch.model.removeprefix("models/")
        return {"response": Generation(prompt, model_id, disclose=self.disclose).whole()}


def _inlined(item: dict[str, Any]) -> dict[str, Any]:
    answer = {key: item[key] for key in ("response", "error") if key in item}
    if item.get("metadata") is not None:
        answer["metadata"] = item["metadata"]
    return answer


def _file_line(item: dict[str, Any]) -> dict[str, Any]:
    line: dict[str, Any] = {}
    if item.get("key") is not None:
        line["key"] = item["key"]
    line.update({key: item[key] for key in ("response", "error") if key in item})
    return line


def _page_size(request: web.Request) -> int:
    raw = request.query.get("pageSize", "")
    try:
        value = int(raw) if raw else 0
    except ValueError:
        raise GoogleError(400, f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\"") from None
    if value < 0:
        raise GoogleError(400, "page_size must not be negative.")
    return min(value or _DEFAULT_PAGE_SIZE, _MAX_PAGE_SIZE)


def _ok(payload: Any) -> web.Response:
    return web.Response(
        body=json.dumps(payload, indent=2, ensure_ascii=False).encode(),
        content_type="application/json",
        charset="UTF-8",
    )
