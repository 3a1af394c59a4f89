"""Thought signatures on a conversation sent back to Gemini.

Gemini 3 refuses a model turn whose first function call carries no
``thoughtSignature``. Clients lose signatures (a history written by another
model, a client that drops thinking blocks or reasoning items), so such a
call gets Google's documented stand-in, as compat-openai's chat surface does.
"""

from __future__ import annotations

# Google's documented value for a function call whose signature was lost (or that Gemini never made).
UNSIGNED_CALL = "skip_thought_signature_validator"


def sign_unsigned_calls(contents: list[dict]) -> list[dict]:
    """``contents`` with the stand-in on each model turn's first call, if that call has no signature.

    Turns that change are copied, so stored turns shared with the caller are never altered.
    """
    signed = []
    for content in contents:
        calls = [i for i, part in enumerate(content["parts"]) if "functionCall" in part]
        if content["role"] == "model" and calls and "thoughtSignature" not in content["parts"][calls[0]]:
            parts = list(content["parts"])
            parts[calls[0]] = {**parts[calls[0]], "thoughtSignature": UNSIGNED_CALL}
            content = {**content, "parts": parts}
        signed.append(content)
    return signed
