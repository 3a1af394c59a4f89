"""What gemproxy owns on a member's behalf, and where on which Google account each thing lives.

Files, cached contents and batches belong to a member (and the key that
made them); Google accounts only hold copies (files) or instances (caches,
batches). ``Placement`` is the one map from a proxy resource to the accounts
holding it, used by all three: the dispatcher prefers or requires the
accounts it names (``resources.placements``).
"""

from __future__ import annotations

import secrets
import string

from django.conf import settings
from django.db import models
from django.utils import timezone

# Google's resource ids: lowercase letters and digits only.
_ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 12


def new_resource_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))


class Kind(models.TextChoices):
    FILE = "file", "file"
    CACHED_CONTENT = "cachedContent", "cached content"
    BATCH = "batch", "batch"


class Owned(models.Model):
    """A resource a member made with one of their keys; the key may be deleted, the resource stays theirs."""

    id = models.CharField(primary_key=True, max_length=40, default=new_resource_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.ForeignKey("accounts.ProxyKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    display_name = models.CharField(max_length=512, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        abstract = True


class StoredFile(Owned):
    """A file uploaded to gemproxy: its bytes in Django's default storage, its copies on accounts."""

    class State(models.TextChoices):
        UPLOADING = "UPLOADING", "uploading"  # gemproxy's own: bytes still arriving; never shown as a File
        PROCESSING = "PROCESSING", "processing"
        ACTIVE = "ACTIVE", "active"
        FAILED = "FAILED", "failed"

    mime_type = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, help_text="Hex digest of the bytes.")
    storage_name = models.CharField(max_length=500, blank=True, help_text="Name in the default storage.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.UPLOADING)
    source = models.CharField(max_length=16, default="UPLOADED")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"files/{self.id}"

    @property
    def name(self) -> str:
        return f"files/{self.id}"


class CachedContent(Owned):
    """A cached content: the member's create request is kept, so it can be created again on another account."""

    model = models.CharField(max_length=200)
    create_request = models.JSONField(help_text="The body the member sent, with gemproxy's file names.")
    usage_metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"cachedContents/{self.id}"

    @property
    def name(self) -> str:
        return f"cachedContents/{self.id}"


class Batch(Owned):
    """A batch job: pinned to the one account that runs it (its ``Placement``)."""

    model = models.CharField(max_length=200)
    state = models.CharField(max_length=40, default="BATCH_STATE_PENDING")
    last_seen = models.JSONField(default=dict, blank=True, help_text="The upstream's latest answer about it.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return f"batches/{self.id}"

    @property
    def name(self) -> str:
        return f"batches/{self.id}"


class Placement(models.Model):
    """One proxy resource held by one executor account, under the upstream's name for it there."""

    kind = models.CharField(max_length=16, choices=Kind.choices)
    resource_id = models.CharField(max_length=40)
    account = models.ForeignKey("executors.ExecutorAccount", on_delete=models.CASCADE, related_name="placements")
    upstream_name = models.CharField(max_length=255, help_text="e.g. files/abc123 on that account.")
    upstream_uri = models.CharField(max_length=1000, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="When the upstream forgets it; empty: never.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "resource_id", "account"], name="one_placement_per_account")
        ]
        indexes = [models.Index(fields=["kind", "resource_id"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.resource_id} on {self.account_id} as {self.upstream_name}"


def new_upload_id() -> str:
    # The upload URL is the only credential of a chunk (the Python SDK sends no key): unguessable.
    return secrets.token_urlsafe(32)


class UploadSession(models.Model):
    """A resumable upload in progress: bound to the file it fills, its member and the key that started it."""

    id = models.CharField(primary_key=True, max_length=64, default=new_upload_id, editable=False)
    file = models.OneToOneField(StoredFile, on_delete=models.CASCADE, related_name="upload")
    declared_size = models.BigIntegerField(null=True, blank=True, help_text="Empty: the client did not say.")
    received = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(db_index=True, help_text="Abandoned after this; the sweep removes it.")

    def __str__(self) -> str:
        return f"upload of {self.file}"


class UploadPart(models.Model):
    """One chunk of a resumable upload, stored as it arrived; joined into the file's bytes at the end."""

    session = models.ForeignKey(UploadSession, on_delete=models.CASCADE, related_name="parts")
    offset = models.BigIntegerField()
    size = models.BigIntegerField()
    storage_name = models.CharField(max_length=500)

    class Meta:
        ordering = ["offset"]
        constraints = [models.UniqueConstraint(fields=["session", "offset"], name="one_part_per_offset")]
