"""Batches through the gateway's ASGI app: created on one account, pinned there, owned by the member.

The dispatcher is replaced by ``AccountsDispatcher``: each executor account is
the fake upstream seen with that account's API key (so another account's
batch is the fake's 403, as at Google), and "connected" accounts are real
entries in the real registry, which is what the gateway consults.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace

import aiohttp
import pytest
from asgiref.sync import sync_to_async

from accounts import usage
from accounts.models import UsageRecord
from executors.dispatcher import DispatchError, ResponseHead, Task
from executors.models import ExecutorAccount
from executors.registry import ExecutorInfo, get_registry
from resources import batch_views, generated, upstream
from resources.models import Batch, Kind, Placement, StoredFile
from tests.api_doubles import asgi_call
from tests.fake_upstream import FakeUpstream

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gemini-2.5-flash"
CREATE = f"/v1beta/models/{MODEL}:batchGenerateContent"
BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"


def inline_batch(*texts: str, display_name: str = "nightly") -> bytes:
    requests = [
        {"request": {"contents": [{"role": "user", "parts": [{"text": text}]}]}, "metadata": {"key": f"r{i}"}}
        for i, text in enumerate(texts)
    ]
    return json.dumps(
        {"batch": {"displayName": display_name, "inputConfig": {"requests": {"requests": requests}}}}
    ).encode()


class AccountsDispatcher:
    """Stands in for ``executors.dispatcher``: routes each task to the fake upstream as one account.

    ``wrong_account`` makes it serve from another account than asked, as a
    registry that ignored ``Task.accounts`` would.
    """

    def __init__(self, fake: FakeUpstream, labels: dict[int, str]) -> None:
        self.fake = fake
        self.labels = labels
        self.wrong_account = False
        self.tasks: list[Task] = []

    async def live(self) -> set[int]:
        return {row["account_id"] for row in await get_registry().snapshot()}

    async def choose(self, accounts: frozenset[int] | None) -> int:
        live = sorted(await self.live())
        if self.wrong_account:
            live = [account for account in live if accounts is None or account not in accounts]
        elif accounts is not None:
            live = [account for account in live if account in accounts]
        if not live:
            raise DispatchError(503, "UNAVAILABLE", "No executor is available to serve this request.", "unavailable")
        return live[0]

    async def fetch(self, task: Task) -> tuple[int, int, dict[str, str], bytes]:
        self.tasks.append(task)
        account = await self.choose(task.accounts)
        url = f"{self.fake.url}{task.path}" + (f"?{task.query}" if task.query else "")
        async with aiohttp.ClientSession() as session:
            async with session.request(
                task.method, url, data=task.body or None, headers={**task.headers, "x-goog-api-key": f"key-{account}"}
            ) as answer:
                return account, answer.status, dict(answer.headers), await answer.read()

    async def call(self, method: str, path: str, **options) -> upstream.UpstreamAnswer:
        task = Task(
            method=method,
            path=path,
            query=options.get("query", ""),
            headers={"content-type": "application/json"},
            body=options.get("body", b""),
            model=options.get("model", ""),
            accounts=options.get("accounts"),
        )
        account, status, headers, body = await self.fetch(task)
        return upstream.UpstreamAnswer(status, headers, body, account, self.labels[account])

    def exchange(self, task: Task) -> SimpleNamespace:
        dispatcher = self
        state: dict = {}

        async def start() -> ResponseHead:
            account, status, headers, body = await dispatcher.fetch(task)
            state["body"] = body
            exchange.account_id = account
            return ResponseHead(status, headers)

        async def body() -> AsyncIterator[bytes]:
            data = state["body"]
            for offset in range(0, len(data), 7):  # in pieces, as frames come
                yield data[offset : offset + 7]

        async def close() -> None:
            state["closed"] = True

        exchange = SimpleNamespace(start=start, body=body, close=close, account_id=None, state=state)
        return exchange


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(batch_delays=(0.2, 0.2)) as upstream_server:
        yield upstream_server


@pytest.fixture
async def account_ids() -> tuple[int, int]:
    def make() -> tuple[int, int]:
        ids = []
        for label in ("ana@example.com", "ben@example.com"):
            account = ExecutorAccount(label=label)
            account.set_new_token()
            account.save()
            ids.append(account.pk)
        return ids[0], ids[1]

    return await sync_to_async(make)()


async def connect(account_id: int, label: str = "") -> str:
    connection_id = f"conn-{account_id}-{time.monotonic_ns()}"
    info = ExecutorInfo(
        connection_id, f"ex-{account_id}", f"chan-{account_id}", account_id, label, "test/1", 4, time.time()
    )
    await get_registry().register(info, time.time() + 3600)
    return connection_id


@pytest.fixture
async def dispatcher(fake, account_ids, monkeypatch) -> AccountsDispatcher:
    a, b = account_ids
    double = AccountsDispatcher(fake, {a: "ana@example.com", b: "ben@example.com"})
    monkeypatch.setattr(upstream, "call", double.call)
    monkeypatch.setattr(generated, "Exchange", double.exchange)
    return double


@pytest.fixture
async def member_headers(amake_key) -> dict[str, str]:
    _, secret = await amake_key()
    return {"x-goog-api-key": secret, "content-type": "application/json"}


@pytest.fixture
async def other_headers(amake_key, other_member) -> dict[str, str]:
    _, secret = await amake_key(other_member)
    return {"x-goog-api-key": secret, "content-type": "application/json"}


async def create(headers: dict[str, str], body: bytes | None = None) -> dict:
    answer = await asgi_call("POST", CREATE, headers=headers, body=body or inline_batch("hello"))
    assert answer.status == 200, answer.body
    return answer.json()


async def get(headers: dict[str, str], name: str):
    return await asgi_call("GET", f"/v1beta/{name}", headers=headers)


async def until_done(headers: dict[str, str], name: str) -> dict:
    for _ in range(100):
        answer = await get(headers, name)
        assert answer.status == 200, answer.body
        if answer.json().get("done"):
            return answer.json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never finished")


# Create.


async def test_create_answers_googles_operation_under_gemproxys_own_name(dispatcher, account_ids, member_headers):
    await connect(account_ids[1])

    operation = await create(member_headers)

    batch = await Batch.objects.aget()
    placement = await Placement.objects.aget(kind=Kind.BATCH, resource_id=batch.id)
    assert operation["name"] == f"batches/{batch.id}" == operation["metadata"]["name"]
    assert placement.upstream_name.startswith("batches/") and placement.upstream_name != operation["name"]
    assert placement.upstream_name.removeprefix("batches/") not in json.dumps(operation)
    assert placement.account_id == account_ids[1]  # the one account connected
    assert operation["metadata"]["@type"] == BATCH_TYPE
    assert operation["metadata"]["state"] == "BATCH_STATE_PENDING"
    assert (batch.model, batch.display_name, batch.state) == (f"models/{MODEL}", "nightly", "BATCH_STATE_PENDING")


async def test_create_without_any_executor_is_unavailable(dispatcher, member_headers):
    answer = await asgi_call("POST", CREATE, headers=member_headers, body=inline_batch("x"))

    assert (answer.status, answer.error["status"]) == (503, "UNAVAILABLE")
    assert await Batch.objects.acount() == 0


async def test_an_upstream_refusal_of_the_create_is_relayed_and_nothing_is_recorded(
    dispatcher, account_ids, member_headers
):
    await connect(account_ids[0])
    body = json.dumps({"batch": {"inputConfig": {"requests": {"requests": []}}}}).encode()

    answer = await asgi_call("POST", CREATE, headers=member_headers, body=body)

    assert (answer.status, answer.error["status"]) == (400, "INVALID_ARGUMENT")
    assert await Batch.objects.acount() == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"batch": 5}',
        b'{"batch": {}}',
        b'{"batch": {"inputConfig": {"fileName": 12}}}',
        b"[" * 5000,
    ],
    ids=["not-json", "array", "batch-not-object", "no-input-config", "file-name-not-string", "deep-nesting"],
)
async def test_hostile_create_bodies_are_refused_before_any_upstream_call(
    dispatcher, account_ids, member_headers, body
):
    await connect(account_ids[0])

    answer = await asgi_call("POST", CREATE, headers=member_headers, body=body)

    assert (answer.status, answer.error["status"]) == (400, "INVALID_ARGUMENT")
    assert dispatcher.tasks == []


async def test_create_without_a_key_is_refused_as_google_does(dispatcher, account_ids):
    await connect(account_ids[0])

    answer = await asgi_call("POST", CREATE, headers={"content-type": "application/json"}, body=inline_batch("x"))

    assert (answer.status, answer.error["status"]) == (403, "PERMISSION_DENIED")


async def test_a_batch_naming_a_file_the_member_does_not_have_is_permission_denied(
    dispatcher, account_ids, member_headers, other_member
):
    await connect(account_ids[0])
    theirs = await StoredFile.objects.acreate(
        owner=other_member, mime_type="application/jsonl", state="ACTIVE", expires_at="2100-01-01T00:00Z"
    )

    for name in ("files/abc123", theirs.name):
        body = json.dumps({"batch": {"inputConfig": {"fileName": name}}}).encode()
        answer = await asgi_call("POST", CREATE, headers=member_headers, body=body)
        assert (answer.status, answer.error["status"]) == (403, "PERMISSION_DENIED")
    assert dispatcher.tasks == []


# Get, pinned.


async def test_get_follows_the_state_to_succeeded_with_inlined_results_and_updates_the_database(
    dispatcher, account_ids, member_headers
):
    await connect(account_ids[0])
    name = (await create(member_headers, inline_batch("first", "second #error=500")))["name"]

    done = await until_done(member_headers, name)

    assert done["name"] == name == done["metadata"]["name"]
    assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    first, second = done["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert first["response"]["candidates"][0]["content"]["parts"][0]["text"] == "echo: first"
    assert first["metadata"] == {"key": "r0"}
    assert second["error"]["code"] == 13 and second["metadata"] == {"key": "r1"}
    batch = await Batch.objects.aget()
    assert batch.state == "BATCH_STATE_SUCCEEDED"
    assert batch.last_seen == done


async def test_calls_about_a_batch_go_only_to_its_account(dispatcher, account_ids, member_headers):
    a, b = account_ids
    await connect(a)
    name = (await create(member_headers))["name"]
    await connect(b)
    dispatcher.tasks.clear()

    assert (await get(member_headers, name)).status == 200

    assert dispatcher.tasks[-1].accounts == frozenset({a})


async def test_while_the_pinned_account_has_no_executor_calls_answer_503_saying_so(
    dispatcher, account_ids, member_headers
):
    a, b = account_ids
    connection = await connect(a)
    name = (await create(member_headers))["name"]
    await get_registry().unregister(connection)
    await connect(b)  # another account is there, and cannot help
    dispatcher.tasks.clear()

    for method, path in (("GET", name), ("POST", f"{name}:cancel"), ("DELETE", name)):
        answer = await asgi_call(
            method, f"/v1beta/{path}", headers=member_headers, body=b"{}" if method == "POST" else b""
        )
        assert (answer.status, answer.error["status"]) == (503, "UNAVAILABLE")
        assert name in answer.error["message"] and "no executor" in answer.error["message"]
        assert "ana@example.com" not in answer.error["message"]
    assert dispatcher.tasks == []
    assert await Batch.objects.acount() == 1


async def test_an_answer_from_another_account_than_the_pinned_one_is_not_relayed(
    dispatcher, account_ids, member_headers
):
    a, b = account_ids
    await connect(a)
    name = (await create(member_headers))["name"]
    await connect(b)
    dispatcher.wrong_account = True

    answer = await get(member_headers, name)

    assert (answer.status, answer.error["status"]) == (503, "UNAVAILABLE")


async def test_another_members_batch_is_as_absent_as_one_that_never_existed(
    dispatcher, account_ids, member_headers, other_headers
):
    await connect(account_ids[0])
    name = (await create(member_headers))["name"]

    for method, path in (("GET", name), ("POST", f"{name}:cancel"), ("DELETE", name), ("GET", "batches/nosuchbatch1")):
        answer = await asgi_call(
            method, f"/v1beta/{path}", headers=other_headers, body=b"{}" if method == "POST" else b""
        )
        assert (answer.status, answer.error["status"]) == (404, "NOT_FOUND")
    assert await Batch.objects.acount() == 1


@pytest.mark.parametrize(
    "raw_path",
    [
        "/v1beta/batches/ABCDEFGHIJKL",
        "/v1beta/batches/" + "a" * 5000,
        "/v1beta/batches/%0a%0d",
        "/v1beta/batches/a%3Fb",
    ],
    ids=["upper-case", "huge", "control-characters", "question-mark"],
)
async def test_malformed_batch_names_are_not_found_without_an_upstream_call(dispatcher, member_headers, raw_path):
    answer = await asgi_call("GET", raw_path, headers=member_headers)

    assert (answer.status, answer.error["status"]) == (404, "NOT_FOUND")
    assert dispatcher.tasks == []


async def test_an_unknown_batch_method_is_not_found(dispatcher, account_ids, member_headers):
    await connect(account_ids[0])
    name = (await create(member_headers))["name"]

    answer = await asgi_call("POST", f"/v1beta/{name}:explode", headers=member_headers, body=b"{}")

    assert (answer.status, answer.error["status"]) == (404, "NOT_FOUND")


# Cancel and delete.


async def test_cancel_answers_empty_and_the_database_learns_the_cancelled_state(
    dispatcher, account_ids, member_headers, fake
):
    await connect(account_ids[0])
    fake.batches.delays = (30, 30)
    name = (await create(member_headers))["name"]

    answer = await asgi_call("POST", f"/v1beta/{name}:cancel", headers=member_headers)

    assert (answer.status, answer.json()) == (200, {})
    assert (await Batch.objects.aget()).state == "BATCH_STATE_CANCELLED"
    assert (await get(member_headers, name)).json()["metadata"]["state"] == "BATCH_STATE_CANCELLED"


async def test_an_upstream_refusal_names_gemproxys_batch_not_the_upstreams(
    dispatcher, account_ids, member_headers, fake
):
    await connect(account_ids[0])
    name = (await create(member_headers))["name"]
    await until_done(member_headers, name)

    answer = await asgi_call("POST", f"/v1beta/{name}:cancel", headers=member_headers, body=b"{}")

    assert answer.status == 400
    upstream_name = (await Placement.objects.aget(kind=Kind.BATCH)).upstream_name
    assert name in answer.error["message"] and upstream_name not in answer.error["message"]


async def test_delete_removes_it_upstream_and_here(dispatcher, account_ids, member_headers, fake):
    await connect(account_ids[0])
    name = (await create(member_headers))["name"]

    answer = await asgi_call("DELETE", f"/v1beta/{name}", headers=member_headers, body=b"{}")

    assert (answer.status, answer.json()) == (200, {})
    assert fake.batches.batches == {}
    assert await Batch.objects.acount() == 0
    assert await Placement.objects.filter(kind=Kind.BATCH).acount() == 0
    assert (await get(member_headers, name)).status == 404


# The list, from the database.


async def test_list_pages_through_the_members_batches_only_newest_first(
    dispatcher, account_ids, member_headers, other_headers
):
    await connect(account_ids[0])
    names = [(await create(member_headers, inline_batch(f"n{i}")))["name"] for i in range(3)]
    await create(other_headers)
    dispatcher.tasks.clear()

    first = await asgi_call("GET", "/v1beta/batches", query="pageSize=2", headers=member_headers)
    token = first.json()["nextPageToken"]
    second = await asgi_call("GET", "/v1beta/batches", query=f"pageSize=2&pageToken={token}", headers=member_headers)

    listed = [op["name"] for op in first.json()["operations"] + second.json()["operations"]]
    assert listed == names[::-1]
    assert "nextPageToken" not in second.json()
    assert first.json()["operations"][0]["metadata"]["@type"] == BATCH_TYPE
    assert dispatcher.tasks == []  # answered from the database


async def test_list_refuses_a_bad_page_token_and_answers_empty_for_a_member_without_batches(dispatcher, member_headers):
    bad = await asgi_call("GET", "/v1beta/batches", query="pageToken=%%%", headers=member_headers)
    empty = await asgi_call("GET", "/v1beta/batches", headers=member_headers)

    assert (bad.status, bad.error["status"]) == (400, "INVALID_ARGUMENT")
    assert (empty.status, empty.json()) == (200, {})


# Operations.


async def test_a_batchs_operation_is_served_under_operations_too(
    dispatcher, account_ids, member_headers, other_headers
):
    await connect(account_ids[0])
    name = (await create(member_headers))["name"]
    batch_id = name.removeprefix("batches/")

    mine = await asgi_call("GET", f"/v1beta/operations/{batch_id}", headers=member_headers)
    theirs = await asgi_call("GET", f"/v1beta/operations/{batch_id}", headers=other_headers)
    model_operation = await asgi_call("GET", f"/v1beta/models/{MODEL}/operations/{batch_id}", headers=member_headers)

    assert (mine.status, mine.json()["name"]) == (200, name)
    assert (theirs.status, theirs.error["status"]) == (404, "NOT_FOUND")
    assert (model_operation.status, model_operation.error["status"]) == (404, "NOT_FOUND")


# Usage.


async def test_every_batch_call_leaves_a_usage_record(dispatcher, account_ids, member_headers, fake):
    await connect(account_ids[0])
    # Still running when it is cancelled: a loaded machine took longer than the fixture's 0.4 s
    # to get there, and Google (the stand-in) refuses to cancel a batch that is done.
    fake.batches.delays = (30, 30)
    name = (await create(member_headers))["name"]
    await get(member_headers, name)
    await asgi_call("GET", "/v1beta/batches", headers=member_headers)
    await asgi_call("POST", f"/v1beta/{name}:cancel", headers=member_headers, body=b"{}")
    await asgi_call("DELETE", f"/v1beta/{name}", headers=member_headers)

    await sync_to_async(usage.flush)()

    rows = [(r.method, r.status_code, r.executor_account) async for r in UsageRecord.objects.order_by("id")]
    assert [row[0] for row in rows] == [
        "batchGenerateContent",
        "batches.get",
        "batches.list",
        "batches.cancel",
        "batches.delete",
    ]
    assert all(status == 200 for _, status, _ in rows), rows
    assert rows[0][2] == rows[1][2] == "ana@example.com"


# A responses file: recorded as the member's generated file, its download relayed from its account.


@pytest.fixture
async def input_file(monkeypatch, member, fake) -> StoredFile:
    """The member's input file, copied (by a stand-in of resources.replication) to "files/upstreaminput"."""
    stored_input = await StoredFile.objects.acreate(
        owner=member,
        mime_type="application/jsonl",
        state=StoredFile.State.ACTIVE,
        storage_name="input.jsonl",
        expires_at="2100-01-01T00:00Z",
    )

    async def ensure_files_on(account_id, files):
        assert [f.id for f in files] == [stored_input.id]
        copy = await Placement.objects.acreate(
            kind=Kind.FILE, resource_id=stored_input.id, account_id=account_id, upstream_name="files/upstreaminput"
        )
        return {stored_input.id: copy}

    monkeypatch.setattr(batch_views.replication, "ensure_files_on", ensure_files_on)
    return stored_input


def file_batch(stored: StoredFile) -> bytes:
    return json.dumps({"batch": {"displayName": "from a file", "inputConfig": {"fileName": stored.name}}}).encode()


async def test_a_file_batch_the_upstream_cannot_read_fails_in_the_members_names(
    dispatcher, account_ids, member_headers, input_file
):
    await connect(account_ids[0])

    done = await until_done(member_headers, (await create(member_headers, file_batch(input_file)))["name"])

    assert done["metadata"]["state"] == "BATCH_STATE_FAILED"
    assert input_file.name in done["error"]["message"]
    assert "upstreaminput" not in json.dumps(done)
    assert (await Batch.objects.aget()).state == "BATCH_STATE_FAILED"


async def test_a_file_batchs_responses_file_is_a_generated_file_downloaded_from_its_account(
    dispatcher, account_ids, member_headers, fake, member, input_file
):
    a = account_ids[0]
    await connect(a)
    input_lines = b'{"key": "k1", "request": {"contents": [{"parts": [{"text": "one"}]}]}}\n'
    fake.batches.input_file = lambda account, name: input_lines if name == "files/upstreaminput" else None
    stored_input = input_file
    body = file_batch(input_file)

    name = (await create(member_headers, body))["name"]
    assert json.loads(dispatcher.tasks[-1].body)["batch"]["inputConfig"]["fileName"] == "files/upstreaminput"
    done = await until_done(member_headers, name)

    assert done["metadata"]["inputConfig"] == {"fileName": stored_input.name}
    assert "upstreaminput" not in json.dumps(done)
    responses_name = done["metadata"]["output"]["responsesFile"]
    assert done["response"]["responsesFile"] == responses_name
    generated_file = await StoredFile.objects.aget(source="GENERATED")
    assert responses_name == f"files/{generated_file.id}"
    assert generated_file.owner_id == member.pk and generated_file.mime_type == "application/jsonl"
    held = await Placement.objects.aget(kind=Kind.FILE, resource_id=generated_file.id)
    assert held.account_id == a and held.upstream_name in fake.batches.files
    assert (await until_done(member_headers, name))["metadata"]["output"]["responsesFile"] == responses_name  # once

    download = await generated.relay_download(
        SimpleNamespace(path=f"/v1beta/{responses_name}:download"), generated_file
    )
    content = b"".join([piece async for piece in download.streaming_content])
    assert json.loads(content.splitlines()[0])["key"] == "k1"
    assert dispatcher.tasks[-1].path == f"/download/v1beta/{held.upstream_name}:download"
    assert dispatcher.tasks[-1].accounts == frozenset({a})


async def test_a_generated_files_download_is_unavailable_while_its_account_has_no_executor(
    dispatcher, account_ids, member
):
    a, b = account_ids
    await connect(b)
    stored = await StoredFile.objects.acreate(
        owner=member, mime_type="application/jsonl", source="GENERATED", state="ACTIVE", expires_at="2100-01-01T00:00Z"
    )
    await Placement.objects.acreate(kind=Kind.FILE, resource_id=stored.id, account_id=a, upstream_name="files/x1")

    from gateway.errors import ApiError

    with pytest.raises(ApiError) as refused:
        await generated.relay_download(SimpleNamespace(path=f"/v1beta/{stored.name}:download"), stored)

    assert (refused.value.http_status, refused.value.status) == (503, "UNAVAILABLE")
    assert dispatcher.tasks == []


async def test_the_call_that_first_sees_a_batch_done_records_its_tokens_once(dispatcher, account_ids, member_headers):
    await connect(account_ids[0])
    name = (await create(member_headers, inline_batch("one two three", "four five")))["name"]
    done = await until_done(member_headers, name)
    await get(member_headers, name)

    await sync_to_async(usage.flush)()

    expected = sum(
        item["response"]["usageMetadata"]["totalTokenCount"]
        for item in done["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    )
    gets = [r.prompt_tokens + r.candidates_tokens async for r in UsageRecord.objects.filter(method="batches.get")]
    assert expected > 0
    assert sorted(gets) == [0] * (len(gets) - 1) + [expected]


async def test_files_named_in_inline_requests_are_placed_on_the_account_that_runs_the_batch(
    dispatcher, account_ids, member_headers, member, monkeypatch
):
    a, b = account_ids
    await connect(a)
    await connect(b)
    picture = await StoredFile.objects.acreate(
        owner=member, mime_type="image/png", state="ACTIVE", storage_name="picture.png", expires_at="2100-01-01T00:00Z"
    )
    await Placement.objects.acreate(
        kind=Kind.FILE,
        resource_id=picture.id,
        account_id=b,
        upstream_name="files/onb",
        upstream_uri="https://upstream.example/v1beta/files/onb",
    )
    placed_on = []

    async def ensure_files_on(account_id, files):
        placed_on.append((account_id, [f.id for f in files]))
        return {picture.id: await Placement.objects.aget(kind=Kind.FILE, resource_id=picture.id, account_id=account_id)}

    monkeypatch.setattr(batch_views.replication, "ensure_files_on", ensure_files_on)
    part = {"file_data": {"file_uri": picture.name, "mime_type": "image/png"}}
    request = {"request": {"contents": [{"parts": [{"text": "describe"}, part]}]}}
    body = json.dumps({"batch": {"inputConfig": {"requests": {"requests": [request]}}}}).encode()

    await create(member_headers, body)

    assert placed_on == [(b, [picture.id])]  # the account already holding the file
    assert dispatcher.tasks[-1].accounts == frozenset({b})
    assert b"files/onb" in dispatcher.tasks[-1].body and picture.name.encode() not in dispatcher.tasks[-1].body
    assert (await Placement.objects.aget(kind=Kind.BATCH)).account_id == b


@pytest.mark.parametrize(
    "path", ["/v1beta/batches", "/v1beta/batches/abcdefghijkl", "/v1beta/batches/abcdefghijkl:cancel"]
)
async def test_a_cors_preflight_needs_no_key_on_any_batch_route(path):
    answer = await asgi_call(
        "OPTIONS", path, headers={"origin": "https://app.example", "access-control-request-method": "GET"}
    )

    assert answer.status == 204
    assert "x-goog-api-key" in answer.headers["access-control-allow-headers"]
