"""Files the upstream made (a batch's responses file): they live only on the account that made them.

gemproxy records such a file as a ``StoredFile`` of source GENERATED with no
bytes of its own and one ``Placement``, on that account. Its download is relayed
from there, streamed piece by piece as the executor sends it; while the account
has no executor, the answer is 503 UNAVAILABLE, as for the batch itself.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from executors.dispatcher import DispatchError, Exchange, Task
from gateway.answer_headers import JSON
from gateway.errors import ApiError, not_found
from resources import batches
from resources.models import Kind, Placement, StoredFile

_VERSION = re.compile(r"^/+(?:download/+)?(v1|v1beta|v1alpha)/")


def _placement(stored: StoredFile) -> Placement | None:
    return (
        Placement.objects.filter(kind=Kind.FILE, resource_id=stored.id)
        .select_related("account")
        .order_by("-created_at")
        .first()
    )


async def relay_download(request: HttpRequest, stored: StoredFile) -> HttpResponse:
    """The bytes of a generated file, from the account holding it; an ApiError (Google's shape) when it cannot."""
    placement = await sync_to_async(_placement)(stored)
    if placement is None:
        raise not_found(f"File {stored.name} has no content to download.")
    await batches.require_executor(placement, stored.name)
    match = _VERSION.match(request.path)
    version = match.group(1) if match else "v1beta"
    exchange = Exchange(
        Task(
            method="GET",
            path=f"/download/{version}/{placement.upstream_name}:download",
            query="alt=media",
            headers={},
            body=b"",
            model="",
            accounts=frozenset({placement.account_id}),
        )
    )
    handed_over = False
    try:
        try:
            head = await exchange.start()
        except DispatchError as error:
            raise ApiError.from_dispatch(error) from None
        if exchange.account_id != placement.account_id:
            raise batches.account_unavailable(placement, stored.name)
        if head.status != 200:
            body = b"".join([piece async for piece in exchange.body()])
            body = body.replace(placement.upstream_name.encode(), stored.name.encode())
            return HttpResponse(body, status=head.status, content_type=JSON)
        handed_over = True
        response = StreamingHttpResponse(_streamed(exchange), status=200)
        response["Content-Type"] = stored.mime_type or "application/octet-stream"
        return response
    finally:
        if not handed_over:
            await exchange.close()


async def _streamed(exchange: Exchange) -> AsyncIterator[bytes]:
    try:
        async for piece in exchange.body():
            yield piece
    finally:
        await exchange.close()
