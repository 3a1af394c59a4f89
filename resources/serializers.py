"""The File resource in Google's exact JSON shape (camelCase, int64 as a string, RFC 3339 times)."""

from __future__ import annotations

import base64
from typing import Any

from rest_framework import serializers

from resources.google_api import int64, timestamp
from resources.models import StoredFile


def sha256_hash(hex_digest: str) -> str:
    # Google's field is the base64 of the hex digest's text, not of the raw 32 bytes.
    return base64.b64encode(hex_digest.encode("ascii")).decode("ascii")


class FileSerializer(serializers.BaseSerializer):
    """``context["origin"]`` is the gateway's public origin and ``context["version"]`` the API version called."""

    def to_representation(self, instance: StoredFile) -> dict[str, Any]:
        origin, version = self.context["origin"], self.context["version"]
        body: dict[str, Any] = {"name": instance.name}
        if instance.display_name:
            body["displayName"] = instance.display_name
        body.update(
            {
                "mimeType": instance.mime_type,
                "sizeBytes": int64(instance.size_bytes),
                "createTime": timestamp(instance.created_at),
                "updateTime": timestamp(instance.updated_at),
                "expirationTime": timestamp(instance.expires_at),
            }
        )
        if instance.sha256:
            body["sha256Hash"] = sha256_hash(instance.sha256)
        body["uri"] = f"{origin}/{version}/{instance.name}"
        body["state"] = instance.state
        body["source"] = instance.source
        return body
