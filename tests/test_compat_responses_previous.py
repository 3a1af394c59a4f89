"""previous_response_id continues a stored response for its owner only; the store stays bounded."""

from __future__ import annotations

import pytest

from gateway.compat.openai_responses import OpenAIResponses, key_owner
from gateway.compat.response_store import BoundedResponseStore, StoredResponse
from gateway.compat.surface import SurfaceError

CALLING_ANSWER = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Checking."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}, "thoughtSignature": "U0lHLTE="},
                ],
            },
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
}
TEXT_ANSWER = {"candidates": [{"content": {"role": "model", "parts": [{"text": "It is 4C."}]}, "finishReason": "STOP"}]}
KEY_A = {"authorization": "Bearer gp-key-a"}
KEY_B = {"authorization": "Bearer gp-key-b"}


@pytest.fixture
def responses() -> OpenAIResponses:
    return OpenAIResponses(store=BoundedResponseStore())


def first_turn(surface: OpenAIResponses, headers=KEY_A, **extra) -> dict:
    body = {
        "model": "gpt-5",
        "input": "Weather in Oslo?",
        "tools": [{"type": "function", "name": "get_weather"}],
        **extra,
    }
    return surface.parse(body, headers).translator.unary(CALLING_ANSWER)


def test_a_follow_up_sends_gemini_the_stored_turns_with_its_own_parts(responses: OpenAIResponses) -> None:
    first = first_turn(responses)
    call_id = next(item["call_id"] for item in first["output"] if item["type"] == "function_call")
    follow_up = {
        "model": "gpt-5",
        "previous_response_id": first["id"],
        "input": [{"type": "function_call_output", "call_id": call_id, "output": "4C"}],
    }
    call = responses.parse(follow_up, KEY_A)
    assert call.body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Oslo?"}]},
        CALLING_ANSWER["candidates"][0]["content"],
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "4C"}}}]},
    ]
    second = call.translator.unary(TEXT_ANSWER)
    assert second["previous_response_id"] == first["id"]
    third = responses.parse({"model": "gpt-5", "previous_response_id": second["id"], "input": "Thanks"}, KEY_A)
    assert len(third.body["contents"]) == 5


def test_instructions_are_not_carried_over(responses: OpenAIResponses) -> None:
    first = responses.parse({"model": "m", "input": "hi", "instructions": "Be terse."}, KEY_A).translator.unary(
        TEXT_ANSWER
    )
    call = responses.parse({"model": "m", "input": "more", "previous_response_id": first["id"]}, KEY_A)
    assert "systemInstruction" not in call.body


def test_a_streamed_response_is_stored_when_its_stream_ends(responses: OpenAIResponses) -> None:
    translator = responses.parse({"model": "m", "input": "hi", "stream": True}, KEY_A).translator
    translator.stream_chunk(TEXT_ANSWER)
    response_id = translator.response_id
    with pytest.raises(SurfaceError):
        responses.parse({"model": "m", "input": "more", "previous_response_id": response_id}, KEY_A)
    translator.stream_end()
    assert responses.parse({"model": "m", "input": "more", "previous_response_id": response_id}, KEY_A)


def test_another_key_cannot_continue_a_response(responses: OpenAIResponses) -> None:
    first = first_turn(responses, KEY_A)
    with pytest.raises(SurfaceError) as refused:
        responses.parse({"model": "m", "input": "x", "previous_response_id": first["id"]}, KEY_B)
    assert refused.value.http_status == 400 and refused.value.param == "previous_response_id"
    assert refused.value.message == f"Previous response with id '{first['id']}' not found."


def test_a_bound_owner_is_the_scope_whatever_key_it_used(responses: OpenAIResponses) -> None:
    ana, bob = responses.for_owner("member:1"), responses.for_owner("member:2")
    first = first_turn(ana, KEY_A)
    assert ana.parse({"model": "m", "input": "x", "previous_response_id": first["id"]}, KEY_B)
    with pytest.raises(SurfaceError):
        bob.parse({"model": "m", "input": "x", "previous_response_id": first["id"]}, KEY_A)


def test_store_false_keeps_nothing(responses: OpenAIResponses) -> None:
    first = first_turn(responses, store=False)
    assert first["store"] is False
    with pytest.raises(SurfaceError):
        responses.parse({"model": "m", "input": "x", "previous_response_id": first["id"]}, KEY_A)


def stored(size_hint: str = "x") -> StoredResponse:
    return StoredResponse.of([{"role": "user", "parts": [{"text": size_hint}]}], {"role": "model", "parts": []}, {})


def test_the_store_drops_the_least_recently_used_beyond_its_count() -> None:
    store = BoundedResponseStore(max_entries=2)
    store.put("o", "r1", stored())
    store.put("o", "r2", stored())
    assert store.get("o", "r1") is not None  # r1 is now the most recently used
    store.put("o", "r3", stored())
    assert (store.get("o", "r1") is not None, store.get("o", "r2"), store.get("o", "r3") is not None) == (
        True,
        None,
        True,
    )


def test_the_store_keeps_its_total_size_under_its_budget() -> None:
    one = stored("y" * 1000)
    store = BoundedResponseStore(max_total_size=one.size * 2 + 10)
    for index in range(5):
        store.put("o", f"r{index}", one)
    assert len(store) == 2 and store.get("o", "r4") is not None
    store.put("o", "huge", stored("z" * 10_000))
    assert store.get("o", "huge") is None and len(store) == 2


def test_the_store_forgets_a_response_after_its_age() -> None:
    now = [1000.0]
    store = BoundedResponseStore(max_age=60, clock=lambda: now[0])
    store.put("o", "r", stored())
    now[0] += 59
    assert store.get("o", "r") is not None
    now[0] += 2
    assert store.get("o", "r") is None and len(store) == 0


def test_a_stored_turn_is_a_copy_that_later_changes_do_not_reach() -> None:
    sent = [{"role": "user", "parts": [{"text": "original"}]}]
    kept = StoredResponse.of(sent, {"role": "model", "parts": [{"text": "a"}]}, {})
    sent[0]["parts"][0]["text"] = "changed"
    assert kept.contents[0]["parts"][0]["text"] == "original"


def test_a_stored_unsigned_call_is_sent_with_the_stand_in_and_stays_unsigned_in_the_store(responses) -> None:
    unsigned = {"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}}]}
    first = responses.parse({"model": "m", "input": "go"}, KEY_A).translator.unary(unsigned)
    follow_up = {"model": "m", "input": "again", "previous_response_id": first["id"]}
    sent = responses.parse(follow_up, KEY_A).body["contents"][1]["parts"][0]
    assert sent["thoughtSignature"] == "skip_thought_signature_validator"
    again = responses.parse(follow_up, KEY_A)
    assert again.body["contents"][1]["parts"][0]["thoughtSignature"] == "skip_thought_signature_validator"
    assert "thoughtSignature" not in responses.store.get(key_owner(KEY_A), first["id"]).contents[1]["parts"][0]


def test_a_caller_whose_key_is_in_no_header_gets_nothing_kept(responses: OpenAIResponses) -> None:
    first = first_turn(responses, headers={})
    with pytest.raises(SurfaceError):
        responses.parse({"model": "m", "input": "x", "previous_response_id": first["id"]}, {})
    assert len(responses.store) == 0


def test_the_owner_of_a_key_is_the_same_in_every_header_a_client_may_use() -> None:
    assert (
        key_owner({"Authorization": "Bearer k1"})
        == key_owner({"x-api-key": "k1"})
        == key_owner({"x-goog-api-key": "k1"})
    )
    assert key_owner({"authorization": "Bearer k1"}) != key_owner({"authorization": "Bearer k2"})
    assert key_owner({"authorization": "Basic k1"}) is None
