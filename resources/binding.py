"""Binding a model call to the proxy resources its body refers to: one mechanism for every kind.

``bind(body, member_id, origins)`` finds the references (``ReferenceKind.find``),
checks that the member may use them (``load``: Google's 403/400 otherwise) and
answers a ``Binding``, the dispatcher's per-attempt hook (``Task.binder``):

- ``prefer``: the accounts that already hold every resource referred to;
- ``body_for(account)``: once an account is chosen, makes sure it holds them
  (``ensure``: files are copied there) and answers the body rewritten to that
  account's upstream names;
- ``lost(account, status, body)``: an upstream 403/404 naming one of those
  upstream copies means the account lost it; the placement is forgotten, so the
  dispatcher's one retry copies it again.

Another kind of reference (a ``cachedContent`` name) is one more
``ReferenceKind`` in ``KINDS``: a finder, a loader that checks ownership, an
``ensure`` that makes it exist on an account, and which placement field the
body must carry. Nothing else changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from resources import caches, placements, references, replication
from resources.models import Kind, Placement
from resources.references import Reference


@dataclass(frozen=True)
class ReferenceKind:
    kind: Kind
    # Bytes one of which a body must contain to be parsed for this kind at all: most calls refer to nothing.
    markers: tuple[bytes, ...]
    find: Callable[[Any, Collection[str]], list[Reference]]
    load: Callable[[Collection[str], int], Awaitable[dict[str, Any]]]
    ensure: Callable[[int, Sequence[Any]], Awaitable[dict[str, Placement]]]
    # What the body names on an account: a file's upstream uri, a cache's upstream name.
    upstream_value: Callable[[Placement], str]


FILES = ReferenceKind(
    kind=replication.FILE,
    markers=references.FILE_MARKERS,
    find=references.file_references,
    load=references.owned_files,
    ensure=replication.ensure_files_on,
    upstream_value=lambda placement: placement.upstream_uri or placement.upstream_name,
)
CACHES = ReferenceKind(
    kind=caches.CACHE,
    markers=caches.CACHE_MARKERS,
    find=caches.cache_references,
    load=caches.owned_caches,
    ensure=caches.ensure_caches_on,
    upstream_value=lambda placement: placement.upstream_name,
)
KINDS: list[ReferenceKind] = [FILES, CACHES]


@dataclass
class _Bound:
    kind: ReferenceKind
    references: list[Reference]
    resources: dict[str, Any]


@dataclass
class Binding:
    """A call's references, resolved; the dispatcher's ``Binder`` for it."""

    body: Any
    bound: list[_Bound]
    prefer: frozenset[int] = frozenset()
    # Per account, the upstream names its copies had in the body last sent there: what ``lost`` looks for.
    _sent: dict[int, dict[str, tuple[Kind, str]]] = field(default_factory=dict)

    async def body_for(self, account_id: int) -> bytes:
        sent: dict[str, tuple[Kind, str]] = {}
        for group in self.bound:
            held = await group.kind.ensure(account_id, list(group.resources.values()))
            for reference in group.references:
                placement = held[reference.resource_id]
                reference.holder[reference.key] = group.kind.upstream_value(placement)
                sent[placement.upstream_name] = (group.kind.kind, reference.resource_id)
        self._sent[account_id] = sent
        return references.serialized(self.body)

    async def lost(self, account_id: int, status: int, body: bytes) -> bool:
        if status not in (403, 404):
            return False
        text = body.decode("utf-8", "replace")
        forgotten = False
        for upstream_name, (kind, resource_id) in self._sent.get(account_id, {}).items():
            # Google names the resource by its id alone ("the File abc123"), or by its whole name.
            if upstream_name.rpartition("/")[2] in text:
                await placements.aforget(kind, resource_id, account_id)
                forgotten = True
        return forgotten


async def bind(body: bytes, member_id: int, origins: Collection[str]) -> Binding | None:
    """The binding of a call to what its body refers to, or None when it refers to nothing of the proxy's."""
    kinds = [kind for kind in KINDS if any(marker in body for marker in kind.markers)]
    if not kinds:
        return None
    parsed = references.parse(body)
    bound = []
    for kind in kinds:
        found = kind.find(parsed, origins)
        if found:
            resources = await kind.load([reference.resource_id for reference in found], member_id)
            bound.append(_Bound(kind, found, resources))
    if not bound:
        return None
    prefer: frozenset[int] | None = None
    for group in bound:
        holders = await placements.aholding_all(group.kind.kind, group.resources)
        prefer = holders if prefer is None else prefer & holders
    return Binding(parsed, bound, prefer or frozenset())
