"""Reading a request: its contents, the test directives in it, and its token count."""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from executors.standin.errors import GoogleError

DEFAULT_STREAM_CHUNKS = 3
# Google counts a fixed number of tokens per image.
TOKENS_PER_INLINE_PART = 258

_DIRECTIVE = re.compile(
    r"#(hold|think|midstream-error|midstream-drop|chunks=\d+|error=\d{3}|slow=[\d.]+|retry-delay=\d{1,6}(?:\.\d{1,3})?)"
)


@dataclass
class Directives:
    hold: bool = False
    think: bool = False
    midstream_error: bool = False
    midstream_drop: bool = False
    chunks: int = DEFAULT_STREAM_CHUNKS
    error: int | None = None
    slow: float = 0.0
    retry_delay: float | None = None

    @classmethod
    def parse(cls, text: str) -> Directives:
        found = cls()
        for token in _DIRECTIVE.findall(text):
            name, _, value = token.partition("=")
            if name == "chunks":
                found.chunks = max(1, int(value))
            elif name == "error":
                found.error = int(value)
            elif name == "slow":
                found.slow = float(value)
            elif name == "retry-delay":
                found.retry_delay = float(value)
            else:
                setattr(found, name.replace("-", "_"), True)
        return found


# Reading requests: Google accepts camelCase and snake_case at every depth.


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def get_field(obj: Any, camel: str, default: Any = None) -> Any:
    if not isinstance(obj, dict):
        return default
    if camel in obj:
        return obj[camel]
    return obj.get(_snake(camel), default)


def decode_base64(data: str) -> bytes:
    """Standard or URL-safe base64, padded or not, as Google accepts."""
    cleaned = data.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise GoogleError(
            400, "Invalid value at 'contents.parts.inline_data.data' (TYPE_BYTES), Base64 decoding failed"
        ) from exc


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@dataclass
class Prompt:
    """What the stand-in reads from a request's contents."""

    last_user_text: str = ""
    texts: list[str] = field(default_factory=list)
    inline_parts: list[tuple[str, bytes]] = field(default_factory=list)
    file_uris: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, contents: Any, system_instruction: Any = None) -> Prompt:
        prompt = cls()
        for content in _as_list(system_instruction):
            prompt._read_content(content)
        for content in _as_list(contents):
            user_texts = prompt._read_content(content)
            if get_field(content, "role", "user") == "user" and user_texts:
                prompt.last_user_text = user_texts[-1]
        return prompt

    def _read_content(self, content: Any) -> list[str]:
        """Reads a Content's parts and returns its texts."""
        if isinstance(content, str):
            content = {"parts": [{"text": content}]}
        texts: list[str] = []
        for part in _as_list(get_field(content, "parts")):
            self._read_part(part, texts)
        return texts

    def _read_part(self, part: Any, user_texts: list[str]) -> None:
        if isinstance(part, str):
            part = {"text": part}
        text = get_field(part, "text")
        if isinstance(text, str):
            self.texts.append(text)
            user_texts.append(text)
        inline = get_field(part, "inlineData")
        if isinstance(inline, dict):
            mime = get_field(inline, "mimeType", "application/octet-stream")
            self.inline_parts.append((mime, decode_base64(get_field(inline, "data", ""))))
        file_data = get_field(part, "fileData")
        if isinstance(file_data, dict):
            self.file_uris.append(get_field(file_data, "fileUri", ""))
        signature = get_field(part, "thoughtSignature")
        if isinstance(signature, str):
            self.signatures.append(signature)

    @property
    def directives(self) -> Directives:
        return Directives.parse(self.last_user_text)

    def token_details(self) -> list[dict[str, Any]]:
        details = [{"modality": "TEXT", "tokenCount": sum(count_tokens(t) for t in self.texts)}]
        if self.inline_parts or self.file_uris:
            images = TOKENS_PER_INLINE_PART * (len(self.inline_parts) + len(self.file_uris))
            details.append({"modality": "IMAGE", "tokenCount": images})
        return details

    def token_count(self) -> int:
        return sum(d["tokenCount"] for d in self.token_details())

    def reply_text(self) -> str:
        pieces = [f"echo: {self.last_user_text}"]
        for mime, data in self.inline_parts:
            pieces.append(f"[inline {mime} {len(data)} bytes sha256={hashlib.sha256(data).hexdigest()}]")
        pieces.extend(f"[file {uri}]" for uri in self.file_uris)
        return " ".join(pieces)


def count_tokens(text: str) -> int:
    # About four characters per token, as Google's tokenizer roughly gives.
    return math.ceil(len(text) / 4)
