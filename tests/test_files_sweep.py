"""The sweep removes expired files (bytes, rows, upstream copies) and abandoned uploads, once, however many run."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.utils import timezone

from executors.dispatcher import DispatchError
from executors.models import ExecutorAccount
from resources import sweep, upstream
from resources.models import Kind, Placement, StoredFile, UploadSession
from resources.upstream import UpstreamAnswer
from tests.files_client import send_chunk, start_upload, stored_files

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures", "tests.files_fixtures"]


@pytest.fixture
def upstream_deletes(monkeypatch) -> list[tuple[str, str, frozenset]]:
    """The sweep's upstream calls, answered 200, or DispatchError for account labels starting with "gone"."""
    calls: list[tuple[str, str, frozenset]] = []

    async def call(method, path, *, accounts=None, **kwargs):
        calls.append((method, path, accounts))
        account = await ExecutorAccount.objects.aget(pk=next(iter(accounts)))
        if account.label.startswith("gone"):
            raise DispatchError(503, "UNAVAILABLE", "No executor of that account is connected.", "unavailable")
        return UpstreamAnswer(200, {}, b"{}", account.pk, account.label)

    monkeypatch.setattr(upstream, "call", call)
    return calls


async def expire(file_id: str) -> None:
    await StoredFile.objects.filter(pk=file_id).aupdate(expires_at=timezone.now() - timedelta(seconds=1))


async def test_an_expired_file_loses_its_bytes_its_row_and_its_upstream_copies(
    key_header, file_storage, upload_whole, upstream_deletes
) -> None:
    kept = await upload_whole(b"kept")
    old = await upload_whole(b"old")
    file_id = old["name"][6:]
    live = await ExecutorAccount.objects.acreate(label="live-account")
    gone = await ExecutorAccount.objects.acreate(label="gone-account")
    for account, name in ((live, "files/up1"), (gone, "files/up2")):
        await Placement.objects.acreate(kind=Kind.FILE, resource_id=file_id, account=account, upstream_name=name)
    await expire(file_id)

    report = await sweep.sweep()

    assert (report.files, report.copies_deleted, report.copies_forgotten) == (1, 1, 1)
    assert sorted(path for _, path, _ in upstream_deletes) == ["/v1beta/files/up1", "/v1beta/files/up2"]
    assert {accounts for *_, accounts in upstream_deletes} == {frozenset({live.pk}), frozenset({gone.pk})}
    assert not await Placement.objects.aexists()
    assert [f.pk async for f in StoredFile.objects.all()] == [kept["name"][6:]]
    assert [path.read_bytes() for path in stored_files(file_storage)] == [b"kept"]


async def test_copies_of_a_file_its_member_deleted_are_deleted_upstream(
    key_header, file_storage, upload_whole, upstream_deletes
) -> None:
    from tests.api_doubles import asgi_call

    uploaded = await upload_whole(b"x")
    account = await ExecutorAccount.objects.acreate(label="live")
    await Placement.objects.acreate(
        kind=Kind.FILE, resource_id=uploaded["name"][6:], account=account, upstream_name="files/abc"
    )
    await asgi_call("DELETE", f"/v1beta/{uploaded['name']}", headers=key_header)

    report = await sweep.sweep()

    assert report.copies_deleted == 1
    assert upstream_deletes == [("DELETE", "/v1beta/files/abc", frozenset({account.pk}))]


async def test_placements_of_other_kinds_and_of_live_files_stay(
    key_header, file_storage, upload_whole, upstream_deletes
) -> None:
    uploaded = await upload_whole(b"x")
    account = await ExecutorAccount.objects.acreate(label="live")
    await Placement.objects.acreate(
        kind=Kind.FILE, resource_id=uploaded["name"][6:], account=account, upstream_name="files/a"
    )
    await Placement.objects.acreate(
        kind=Kind.CACHED_CONTENT, resource_id="nocache", account=account, upstream_name="c/1"
    )

    await sweep.sweep()

    assert await Placement.objects.acount() == 2
    assert upstream_deletes == []


async def test_an_abandoned_upload_loses_its_parts(key_header, file_storage, upstream_deletes) -> None:
    started = await start_upload({"x-goog-api-key": key_header["x-goog-api-key"]}, {}, size=100)
    await send_chunk(started.headers["x-goog-upload-url"], b"p" * 40, 0)
    assert len(stored_files(file_storage)) == 1
    await StoredFile.objects.aupdate(expires_at=timezone.now() - timedelta(seconds=1))

    report = await sweep.sweep()

    assert report.files == 1
    assert stored_files(file_storage) == []
    assert not await UploadSession.objects.aexists()


async def test_sweeps_running_at_once_remove_each_file_once(
    key_header, file_storage, upload_whole, upstream_deletes
) -> None:
    for n in range(5):
        await expire((await upload_whole(f"{n}".encode()))["name"][6:])

    reports = await asyncio.gather(*(sweep.sweep() for _ in range(3)))

    assert sum(report.files for report in reports) == 5
    assert stored_files(file_storage) == []


async def test_the_management_command_sweeps(key_header, file_storage, upload_whole, upstream_deletes) -> None:
    await expire((await upload_whole(b"x"))["name"][6:])

    await sync_to_async(call_command)("sweep_files")

    assert not await StoredFile.objects.aexists()
    assert stored_files(file_storage) == []


async def test_each_process_starts_its_periodic_sweep_once(settings, monkeypatch) -> None:
    settings.GEMPROXY_FILES_SWEEP_INTERVAL = 0.05
    passes = []

    async def counted(now=None):
        passes.append(1)
        return sweep.SweepReport()

    monkeypatch.setattr(sweep, "sweep", counted)
    sweep.ensure_running()
    sweep.ensure_running()
    await asyncio.sleep(0.3)
    task = sweep._running[id(asyncio.get_running_loop())]
    task.cancel()

    assert 3 <= len(passes) <= 7  # one loop, not two


@pytest.mark.django_db(transaction=True, databases=["default", "postgresql"])
def test_on_postgresql_concurrent_claims_never_take_one_file_twice(on_postgresql, member) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    past = timezone.now() - timedelta(seconds=1)
    StoredFile.objects.bulk_create(
        [
            StoredFile(owner=member, mime_type="text/plain", storage_name=f"files/s{n}", expires_at=past)
            for n in range(30)
        ]
    )

    def claim() -> list[list[str]]:
        try:
            return sweep._claim_expired_files(timezone.now())
        finally:
            connections.close_all()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: claim(), range(4)))

    claimed = [names[0] for result in results for names in result]
    assert sorted(claimed) == sorted(f"files/s{n}" for n in range(30))
