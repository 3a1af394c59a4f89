"""Files the upstream made (a batch's output): they live only on the account that made them.

Their download is relayed to that account's executor (filled in by the batches work).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from gateway.errors import not_found
from resources.models import StoredFile


async def relay_download(request: HttpRequest, stored: StoredFile) -> HttpResponse:
    """The bytes of a generated file, from the account holding it."""
    raise not_found(f"File {stored.name} has no content to download.")
