"""Wire formats of a turn's events: each module maps the one event vocabulary (`session`,
`text_delta`, `thinking_delta`, `tool_use`, `tool_result`, `result`, `error`; see
assistant/runs/) to the bytes of one client protocol, with no I/O of its own.

An encoder is made per response; `encode(frame)` returns the bytes for one event (possibly none),
`keepalive()` the bytes a quiet stream sends now and then, and `content_type` / `headers` what the
response carries."""

from __future__ import annotations

from assistant.wire.data_stream_v4 import DataStreamEncoder
from assistant.wire.platform_sse import PlatformSseEncoder
from assistant.wire.ui_message_v5 import UIMessageStreamEncoder

ENCODERS = {"sse": PlatformSseEncoder, "v5": UIMessageStreamEncoder, "v4": DataStreamEncoder}
PROTOCOLS = tuple(ENCODERS)
TERMINAL_EVENTS = frozenset({"result", "error"})


def encoder_for(protocol: str):
    return ENCODERS[protocol]()
