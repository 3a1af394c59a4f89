"""What a proxy key may do: its limits, models and networks, after applying the member's defaults.

A key's own value wins; an empty one falls back to the member's default; an
empty default means no restriction. A numeric limit of 0 also means no limit,
so a key can lift a default.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LIMIT_NAMES = ("rpm", "rpd", "tpm", "tpd", "concurrency")

_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class Limits:
    rpm: int = 0
    rpd: int = 0
    tpm: int = 0
    tpd: int = 0
    concurrency: int = 0

    @property
    def any(self) -> bool:
        return bool(self.rpm or self.rpd or self.tpm or self.tpd or self.concurrency)

    @property
    def counts_tokens(self) -> bool:
        return bool(self.tpm or self.tpd)


@dataclass(frozen=True)
class StorageLimits:
    """What a key may keep in the Files API at once; 0: no limit."""

    storage_bytes: int = 0
    file_count: int = 0


@dataclass(frozen=True)
class KeyPolicy:
    limits: Limits = Limits()
    storage: StorageLimits = StorageLimits()
    model_patterns: tuple[str, ...] = ()  # empty: any model
    networks: tuple[Network, ...] = ()  # empty: any address

    def allows_model(self, model: str) -> bool:
        if not self.model_patterns or not model:
            return True
        return _model_allowed(model, self.model_patterns)

    def allows_ip(self, client_ip: str) -> bool:
        if not self.networks:
            return True
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address.version == net.version and address in net for net in self.networks)


@lru_cache(maxsize=4096)
def _model_allowed(model: str, patterns: tuple[str, ...]) -> bool:
    # Clients name models with or without "models/"; patterns are written without.
    bare = model.removeprefix("models/")
    return any(fnmatchcase(bare, pattern) or fnmatchcase(model, pattern) for pattern in patterns)


def split_list(text: str) -> list[str]:
    return [item for item in _SEPARATORS.split(text or "") if item]


def parse_model_patterns(text: str) -> tuple[str, ...]:
    """``"gemini-2.5-*, models/gemini-2.0-flash"`` -> patterns without the ``models/`` prefix."""
    return tuple(item.removeprefix("models/") for item in split_list(text))


def parse_networks(text: str) -> tuple[Network, ...]:
    """CIDRs (or single addresses) separated by commas or whitespace; raises ValueError."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in split_list(text))


def build_policy(key_fields, default_fields) -> KeyPolicy:
    """Merge a key's limit fields over its member's defaults (``default_fields`` may be None)."""

    def pick(name: str):
        own = getattr(key_fields, name, None)
        if own not in (None, ""):
            return own
        return getattr(default_fields, name, None) if default_fields is not None else None

    limits = Limits(**{name: pick(name) or 0 for name in LIMIT_NAMES})
    patterns = parse_model_patterns(pick("allowed_models") or "")
    if "*" in patterns:
        patterns = ()
    storage = StorageLimits(storage_bytes=pick("storage_bytes") or 0, file_count=pick("file_count") or 0)
    return KeyPolicy(
        limits=limits,
        storage=storage,
        model_patterns=patterns,
        networks=parse_networks(pick("ip_allowlist") or ""),
    )
