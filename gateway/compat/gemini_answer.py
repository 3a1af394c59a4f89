"""Reading a Gemini answer (whole, or one stream chunk) the way every foreign surface needs it.

An answer crossed an executor, so it is read defensively: a field of the
wrong type counts as absent rather than raising in the middle of a stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# finishReason values that mean Google withheld or cut the answer for policy reasons.
REFUSALS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT"}
)


def _count(value: Any) -> int:
    # int64 fields may come as strings in JSON.
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


@dataclass(frozen=True)
class Usage:
    prompt: int = 0  # promptTokenCount, cached tokens included
    cached: int = 0  # cachedContentTokenCount
    tool_prompt: int = 0  # toolUsePromptTokenCount (server-side tools such as search)
    candidates: int = 0
    thoughts: int = 0

    @classmethod
    def of(cls, answer: dict) -> Usage | None:
        meta = answer.get("usageMetadata")
        if not isinstance(meta, dict):
            return None
        return cls(
            prompt=_count(meta.get("promptTokenCount")),
            cached=_count(meta.get("cachedContentTokenCount")),
            tool_prompt=_count(meta.get("toolUsePromptTokenCount")),
            candidates=_count(meta.get("candidatesTokenCount")),
            thoughts=_count(meta.get("thoughtsTokenCount")),
        )

    @property
    def uncached_input(self) -> int:
        return max(self.prompt - self.cached, 0) + self.tool_prompt

    @property
    def output(self) -> int:
        # Thinking is billed as output by Google, and counted as output by both foreign APIs.
        return self.candidates + self.thoughts


def candidate(answer: dict) -> dict:
    """The first candidate; the foreign surfaces ask for one (candidateCount is never sent)."""
    candidates = answer.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    return {}


def parts(answer: dict) -> list[dict]:
    content = candidate(answer).get("content")
    if not isinstance(content, dict):
        return []
    found = content.get("parts")
    if not isinstance(found, list):
        return []
    return [part for part in found if isinstance(part, dict)]


def finish_reason(answer: dict) -> str | None:
    reason = candidate(answer).get("finishReason")
    return reason if isinstance(reason, str) else None


def block_reason(answer: dict) -> str | None:
    """Why Google refused the prompt itself (no candidates at all)."""
    feedback = answer.get("promptFeedback")
    if isinstance(feedback, dict) and isinstance(feedback.get("blockReason"), str):
        return feedback["blockReason"]
    return None


def text_of(part: dict) -> str | None:
    text = part.get("text")
    return text if isinstance(text, str) else None


def signature_of(part: dict) -> str | None:
    signature = part.get("thoughtSignature", part.get("thought_signature"))
    return signature if isinstance(signature, str) and signature else None


def is_thought(part: dict) -> bool:
    return part.get("thought") is True


def function_call(part: dict) -> dict | None:
    call = part.get("functionCall", part.get("function_call"))
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return None
    return call


def function_args(call: dict) -> dict:
    args = call.get("args")
    return args if isinstance(args, dict) else {}


def code_text(part: dict) -> str | None:
    """Gemini's code-execution parts, as Markdown text: neither foreign API has a block for them."""
    code = part.get("executableCode")
    if isinstance(code, dict) and isinstance(code.get("code"), str):
        language = code.get("language")
        tag = language.lower() if isinstance(language, str) and language != "LANGUAGE_UNSPECIFIED" else ""
        return f"\n```{tag}\n{code['code']}\n```\n"
    result = part.get("codeExecutionResult")
    if isinstance(result, dict):
        output = result.get("output")
        return f"\n```\n{output if isinstance(output, str) else ''}\n```\n"
    return None
