"""Usage estimates: what a model call counts before (or without) the provider's own figures.

Budgets must see every call, also one that ends before the provider says what it cost: Chat
Completions reports usage only in its last chunk, so a stream that is stopped, dropped or fails
midway never gets there (nor does any stream of a compatible server that sends no usage chunk), and
the organization's key would pay for calls no budget saw.

The heuristic: ⌈UTF-8 bytes / 4⌉ tokens. About four bytes of English or code make one token in both
providers' tokenizers (OpenAI's rule of thumb is four characters per token); counting bytes rather
than characters counts more for scripts that take more tokens per character (CJK: three bytes,
roughly one token) instead of a quarter of them. No tokenizer: Anthropic publishes none for its
current models, OpenAI's would have to be downloaded, and an estimate only has to be of the right
size. It counts, for input, the call as JSON (system prompt, messages, tool definitions; the JSON's
punctuation stands in for the per-message overhead providers add) and, for output, the text,
thinking and tool calls' names and arguments received so far.
"""

from __future__ import annotations

import dataclasses
import json

from assistant.llm.types import ModelCall, Usage

BYTES_PER_TOKEN = 4


def tokens_for_bytes(size: int) -> int:
    return -(-size // BYTES_PER_TOKEN)


# An image counts as about this many tokens (Anthropic: width × height / 750, a 1.15-megapixel
# image ~1,600), not as the bytes of its base64 data.
IMAGE_TOKENS = 1_600


def _without_image_data(messages: list) -> tuple[list, int]:
    images = 0
    out = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "image" for b in content):
            images += sum(1 for b in content if isinstance(b, dict) and b.get("type") == "image")
            message = {**message, "content": [b for b in content if not (isinstance(b, dict) and b.get("type") == "image")]}
        out.append(message)
    return out, images


def input_estimate(call: ModelCall) -> int:
    """The input tokens of `call`, estimated from what it sends."""
    messages, images = _without_image_data(call.messages)
    sent = json.dumps([call.system, messages, call.tools], ensure_ascii=False, separators=(",", ":"), default=str)
    return tokens_for_bytes(len(sent.encode())) + images * IMAGE_TOKENS


class CallMeter:
    """The usage of one model call while it streams (see UsageReported for the contract).

    `usage` starts as the input estimate; `received` adds each piece of output (the hot path: one
    encode and a division, well under a microsecond); `reported` puts the provider's figures in
    place of the estimate. Text no UTF-8 can hold (a lone surrogate, which no database could store
    either) raises UnicodeEncodeError there: the adapters report it as a malformed answer."""

    __slots__ = ("usage", "_received", "_output_floor", "_final")

    def __init__(self, call: ModelCall) -> None:
        self.usage = Usage(input_tokens=input_estimate(call), estimated=True)
        self._received = 0  # UTF-8 bytes of output so far
        self._output_floor = 0  # output tokens the provider has already counted
        self._final = False

    def received(self, text: str) -> None:
        self._received += len(text.encode())
        if not self._final:
            self.usage.output_tokens = max(self._output_floor, tokens_for_bytes(self._received))

    def reported(self, usage: Usage, *, final: bool) -> None:
        """The provider's figures. `final`: all of them (the output count included); otherwise input
        and cache counts only (Anthropic's `message_start`), the output staying estimated, and at
        least what the provider counted so far."""
        target = self.usage
        target.input_tokens = usage.input_tokens
        target.cache_read_input_tokens = usage.cache_read_input_tokens
        target.cache_creation_input_tokens = usage.cache_creation_input_tokens
        if final:
            self._final = True
            target.output_tokens = usage.output_tokens
            target.estimated = False
        else:
            self._output_floor = usage.output_tokens
            target.output_tokens = max(usage.output_tokens, tokens_for_bytes(self._received))

    def finished(self) -> Usage:
        """The call's usage when it ended, as a copy of its own."""
        return dataclasses.replace(self.usage)
