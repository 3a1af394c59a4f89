"""A member's batches: each runs on one upstream account and stays pinned there (a ``Placement``).

The member only ever sees gemproxy's names: ``batches/{id}`` for the batch
(which is also its long-running operation's name) and ``files/{id}`` for a
responses file the upstream wrote, recorded as a ``StoredFile`` of source
GENERATED placed on the same account. Every upstream answer about a batch is
rewritten to those names (``member_operation``) and kept as the batch's
``last_seen``, which is what ``GET batches`` lists.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.db import router, transaction
from django.utils import timezone

from executors.registry import get_registry
from gateway.errors import ApiError, not_found
from gateway.resources import quoted
from resources import placements
from resources.models import ID_LENGTH, Batch, Kind, Placement, StoredFile

BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
# Google keeps a batch's record and its results about this long; gemproxy's record says so too.
LIFETIME = timedelta(hours=48)
GENERATED = "GENERATED"
SUCCEEDED = "BATCH_STATE_SUCCEEDED"
# Kind's members read as (value, label) tuples to mypy without Django's stubs; Kind(value) is the member.
BATCH_KIND = Kind(Kind.BATCH)
FILE_KIND = Kind(Kind.FILE)
_TOKEN_COUNTS = ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "cachedContentTokenCount")
_ID_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def _atomic() -> transaction.Atomic:
    # On the database the models are written to, wherever a router sends them.
    return transaction.atomic(using=router.db_for_write(Batch))


def valid_id(batch_id: str) -> bool:
    """gemproxy's own batch ids: what ``new_resource_id`` makes; anything else names no batch."""
    return len(batch_id) == ID_LENGTH and set(batch_id) <= _ID_CHARACTERS


def missing(batch_id: str) -> ApiError:
    return not_found(f"Batch {quoted('batches/' + batch_id)} was not found.")


def pinned(owner_id: int, batch_id: str) -> tuple[Batch, Placement]:
    """The member's batch and the placement of the account running it; 404 for anyone else's."""
    if not valid_id(batch_id):
        raise missing(batch_id)
    batch = Batch.objects.filter(owner_id=owner_id, id=batch_id).first()
    if batch is None:
        raise missing(batch_id)
    placement = Placement.objects.filter(kind=Kind.BATCH, resource_id=batch.id).select_related("account").first()
    if placement is None:
        # Its account was removed from gemproxy (placements go with it): nothing can reach the batch again.
        raise not_found(f"Batch {batch.name} ran on an executor account that no longer exists.")
    return batch, placement


apinned = sync_to_async(pinned)


def _metadata_of(operation: dict) -> dict:
    metadata = operation.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def account_unavailable(placement: Placement, what: str) -> ApiError:
    # Members never learn which Google accounts serve them (the admin does): the message does not name it.
    return ApiError(
        503,
        "UNAVAILABLE",
        f"{what} lives on one executor account of this gateway, and no executor of that account is connected "
        "right now. Try again when it is back online.",
        outcome="unavailable",
        headers={"Retry-After": "30"},
    )


async def require_executor(placement: Placement, what: str) -> None:
    """Refuse at once (503) while no executor of the pinned account is connected: no other account can serve."""
    live = await get_registry().snapshot()
    if not any(row.get("account_id") == placement.account_id for row in live):
        raise account_unavailable(placement, what)


def upstream_id(placement: Placement) -> str:
    return placement.upstream_name.removeprefix("batches/")


def create(key: Any, model: str, operation: dict, account_id: int, input_file: str = "") -> Batch:
    """Record a batch the upstream accepted on ``account_id``, pinned there, under a new id of gemproxy's.

    ``input_file`` is the member's name of its input file (``files/{id}``), shown wherever the
    upstream names its own copy.
    """
    metadata = _metadata_of(operation)
    now = timezone.now()
    with _atomic():
        batch = Batch.objects.create(
            owner_id=key.user_id,
            key=key,
            model=model,
            display_name=str(metadata.get("displayName") or "")[:512],
            state=str(metadata.get("state") or "BATCH_STATE_PENDING")[:40],
            expires_at=now + LIFETIME,
        )
        placements.remember(BATCH_KIND, batch.id, account_id, str(operation["name"]))
        batch.last_seen = member_operation(batch, operation, {}, input_file)
        batch.save(update_fields=["last_seen"])
    return batch


acreate = sync_to_async(create)


@dataclass(frozen=True)
class Observed:
    operation: dict  # in the member's names
    newly_succeeded: bool  # this answer is the first to say SUCCEEDED: its tokens are counted now, once


def observe(batch: Batch, placement: Placement, operation: dict) -> Observed:
    """The upstream's latest word on the batch, in the member's names; the database updated from it.

    The batch's row is locked meanwhile, so that two calls seeing it done at once
    record one responses file and count its tokens once.
    """
    with _atomic():
        locked = Batch.objects.select_for_update().filter(pk=batch.pk).first()
        if locked is None:  # deleted meanwhile
            return Observed(member_operation(batch, operation, {}, input_file_of(batch)), False)
        files = _generated_files(locked, placement, operation)
        input_file = input_file_of(locked)
        copy_of_input = placements.on_account(FILE_KIND, input_file.removeprefix("files/"), placement.account_id)
        if input_file and copy_of_input is not None:
            files[copy_of_input.upstream_name] = input_file
        shown = member_operation(locked, operation, files, input_file)
        state_before = locked.state
        state = _metadata_of(shown).get("state")
        if isinstance(state, str) and state:
            locked.state = state[:40]
        locked.last_seen = shown
        locked.updated_at = timezone.now()
        locked.save(update_fields=["state", "last_seen", "updated_at"])
    batch.state, batch.last_seen, batch.updated_at = locked.state, locked.last_seen, locked.updated_at
    return Observed(shown, state_before != SUCCEEDED and locked.state == SUCCEEDED)


aobserve = sync_to_async(observe)


def forget(batch: Batch) -> None:
    """The upstream deleted it: so does gemproxy (its responses file, a file of its own, stays)."""
    with _atomic():
        placements.forget(BATCH_KIND, batch.id)
        batch.delete()


aforget = sync_to_async(forget)


def input_file_of(batch: Batch) -> str:
    """The member's name of the batch's input file, as first shown to them ("" for inline requests)."""
    config = _metadata_of(batch.last_seen or {}).get("inputConfig")
    name = config.get("fileName") if isinstance(config, dict) else None
    return name if isinstance(name, str) else ""


def member_operation(batch: Batch, operation: dict, files: dict[str, str], input_file: str = "") -> dict:
    """``operation`` with gemproxy's names in place of the upstream's: the batch's, its input and responses files'."""
    shown = copy.deepcopy(operation)
    upstream_name = operation.get("name")
    shown["name"] = batch.name
    metadata = shown.get("metadata")
    if isinstance(metadata, dict):
        if "name" in metadata:
            metadata["name"] = batch.name
        _rename_output(metadata.get("output"), files)
        config = metadata.get("inputConfig")
        if isinstance(config, dict) and "fileName" in config:
            # The upstream's copy of the member's file has a name only that account knows.
            config["fileName"] = input_file
            if not input_file:
                del config["fileName"]
    _rename_output(shown.get("response"), files)
    error = shown.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        names = {**files, upstream_name: batch.name} if isinstance(upstream_name, str) else files
        for theirs, ours in names.items():
            error["message"] = error["message"].replace(theirs, ours)
    return shown


def _rename_output(output: Any, files: dict[str, str]) -> None:
    if isinstance(output, dict) and isinstance(output.get("responsesFile"), str):
        upstream_file = output["responsesFile"]
        # A name not (yet) mapped is never shown: it is a name on an account the member cannot reach.
        output["responsesFile"] = files.get(upstream_file, "")
        if not output["responsesFile"]:
            del output["responsesFile"]


def _responses_files(operation: dict) -> set[str]:
    found = set()
    for output in (_metadata_of(operation).get("output"), operation.get("response")):
        if isinstance(output, dict) and isinstance(output.get("responsesFile"), str):
            found.add(output["responsesFile"])
    return found


def _generated_files(batch: Batch, placement: Placement, operation: dict) -> dict[str, str]:
    """Upstream file name -> gemproxy's, recording each responses file the first time it is seen."""
    names = {}
    for upstream_file in _responses_files(operation):
        if not upstream_file.startswith("files/") or len(upstream_file) > 255:
            continue
        names[upstream_file] = generated_file(batch, placement.account_id, upstream_file).name
    return names


def generated_file(batch: Batch, account_id: int, upstream_file: str) -> StoredFile:
    """The member's ``StoredFile`` for a file the upstream made on ``account_id``, made on first sight."""
    held = Placement.objects.filter(kind=Kind.FILE, account_id=account_id, upstream_name=upstream_file)
    for placement in held:
        stored = StoredFile.objects.filter(id=placement.resource_id, owner_id=batch.owner_id).first()
        if stored is not None:
            return stored
    now = timezone.now()
    with _atomic():
        stored = StoredFile.objects.create(
            owner_id=batch.owner_id,
            key_id=batch.key_id,
            display_name=f"Responses of {batch.name}",
            mime_type="application/jsonl",
            state=StoredFile.State.ACTIVE,
            source=GENERATED,
            expires_at=now + LIFETIME,
        )
        placements.remember(FILE_KIND, stored.id, account_id, upstream_file, expires_at=now + LIFETIME)
    return stored


def tokens_spent(operation: dict) -> dict[str, int]:
    """The tokens of a done batch's inlined responses, summed (a responses file's are not read here)."""
    spent = dict.fromkeys(_TOKEN_COUNTS, 0)
    output = _metadata_of(operation).get("output")
    inlined = output.get("inlinedResponses") if isinstance(output, dict) else None
    items = inlined.get("inlinedResponses") if isinstance(inlined, dict) else None
    for item in items if isinstance(items, list) else []:
        response = item.get("response") if isinstance(item, dict) else None
        metadata = response.get("usageMetadata") if isinstance(response, dict) else None
        if not isinstance(metadata, dict):
            continue
        for name in _TOKEN_COUNTS:
            value = metadata.get(name)
            # int64 may come as a string; anything else (or absurd) counts for nothing.
            if isinstance(value, int | str) and str(value).isdigit() and len(str(value)) < 12:
                spent[name] += int(value)
    return spent


def delete_expired() -> int:
    """Delete the batches past their expiry, and their placements; how many batches went.

    Google forgets a batch and its results by itself after the same lifetime,
    so nothing is called upstream. A responses file the batch wrote is a
    ``StoredFile`` with its own expiry: the files' sweep removes it. For the
    sweep (``resources.sweep``).
    """
    with _atomic():
        expired = list(Batch.objects.filter(expires_at__lte=timezone.now()).values_list("id", flat=True))
        Placement.objects.filter(kind=BATCH_KIND, resource_id__in=expired).delete()
        Batch.objects.filter(id__in=expired).delete()
    return len(expired)
