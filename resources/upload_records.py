"""The database side of uploads: files being filled, their resumable sessions and parts.

Synchronous, short, one transaction each; the async upload views call them
through ``database_sync_to_async``. Offsets advance with a conditional UPDATE,
so that two chunks racing for one offset (a client's retry, two gateway
processes) cannot both be taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import router, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import ProxyKey
from gateway.errors import ApiError
from resources import storage_quota
from resources.models import StoredFile, UploadPart, UploadSession
from resources.storage import Written


@dataclass(frozen=True)
class FileFields:
    """What a client may say about a new file: validated, ready for the row."""

    display_name: str
    mime_type: str
    size: int | None  # None: not declared
    file_id: str  # "": gemproxy chooses


def file_ttl() -> timedelta:
    return timedelta(seconds=settings.GEMPROXY_FILE_TTL_SECONDS)


def _new_file(key: ProxyKey, fields: FileFields, expires_in: timedelta) -> StoredFile:
    now = timezone.now()
    stored = StoredFile(
        owner_id=key.user_id,
        key=key,
        display_name=fields.display_name,
        mime_type=fields.mime_type,
        size_bytes=fields.size or 0,
        created_at=now,
        updated_at=now,
        expires_at=now + expires_in,
    )
    if fields.file_id:
        if StoredFile.objects.filter(pk=fields.file_id).exists():
            raise ApiError(409, "ALREADY_EXISTS", f"File files/{fields.file_id} already exists.")
        stored.id = fields.file_id
    stored.save(force_insert=True)
    return stored


def _atomic():
    # On the database the files are written to (a router may choose another than "default").
    return transaction.atomic(using=router.db_for_write(StoredFile))


def _lock_room(key: ProxyKey) -> None:
    # One new file of a key at a time: the room checked is the room taken (PostgreSQL; SQLite writes one at a time).
    ProxyKey.objects.select_for_update().filter(pk=key.pk).first()


def start_session(key: ProxyKey, fields: FileFields) -> UploadSession:
    """A file row in UPLOADING (counted in the key's room at its declared size) and its session."""
    with _atomic():
        _lock_room(key)
        storage_quota.check_new_file(key, fields.size)
        lifetime = timedelta(seconds=settings.GEMPROXY_UPLOAD_SESSION_SECONDS)
        stored = _new_file(key, fields, lifetime)
        return UploadSession.objects.create(file=stored, declared_size=fields.size, expires_at=stored.expires_at)


def load_session(upload_id: str) -> UploadSession | None:
    return (
        UploadSession.objects.select_related("file", "file__key", "file__key__user", "file__key__user__default_limits")
        .filter(pk=upload_id, expires_at__gt=timezone.now())
        .first()
    )


def advance(session: UploadSession, offset: int, part: Written) -> bool:
    """Take ``part`` at ``offset`` if the session is still there; False if another chunk took it first."""
    with _atomic():
        taken = UploadSession.objects.filter(pk=session.pk, received=offset).update(received=F("received") + part.size)
        if not taken:
            return False
        UploadPart.objects.create(session=session, offset=offset, size=part.size, storage_name=part.storage_name)
        if session.declared_size is None:
            # Undeclared: the bytes so far count in the key's room.
            StoredFile.objects.filter(pk=session.file_id).update(size_bytes=offset + part.size)
    session.received = offset + part.size
    return True


def part_names(session: UploadSession) -> list[str]:
    return list(session.parts.order_by("offset").values_list("storage_name", flat=True))


def finish_session(session: UploadSession, written: Written) -> StoredFile | None:
    """The file is whole: ACTIVE from now, for the files' lifetime; the session and its parts' rows go.

    None when another request finished (or cancelled) the session first: only one finalize wins.
    """
    now = timezone.now()
    stored = session.file
    stored.size_bytes, stored.sha256, stored.storage_name = written.size, written.sha256, written.storage_name
    stored.state = StoredFile.State.ACTIVE
    stored.created_at = stored.updated_at = now
    stored.expires_at = now + file_ttl()
    with _atomic():
        if not UploadSession.objects.filter(pk=session.pk).delete()[0]:
            return None
        stored.save(
            update_fields=["size_bytes", "sha256", "storage_name", "state", "created_at", "updated_at", "expires_at"]
        )
    return stored


def forget_session(session: UploadSession) -> list[str]:
    """Drop an upload that will not finish (its file row too); the storage names of its parts are returned."""
    names = part_names(session)
    StoredFile.objects.filter(pk=session.file_id).delete()
    return names


def create_whole(key: ProxyKey, fields: FileFields, written: Written) -> StoredFile:
    """A file that arrived in one request (multipart, media): ACTIVE at once, if the key still has room for it.

    Checked again now that its size is known, with the key's room locked: uploads that ran side by side
    were each checked against the room before the others took it.
    """
    sized = FileFields(fields.display_name, fields.mime_type, written.size, fields.file_id)
    with _atomic():
        _lock_room(key)
        storage_quota.check_new_file(key, written.size)
        stored = _new_file(key, sized, file_ttl())
        stored.sha256, stored.storage_name, stored.state = written.sha256, written.storage_name, StoredFile.State.ACTIVE
        stored.save(update_fields=["sha256", "storage_name", "state"])
    return stored
