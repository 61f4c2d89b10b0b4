"""What every provider adapter speaks: one model call in, neutral events out.

Messages are in the stored block format (text / thinking / tool_use / tool_result blocks in
`{"role", "content": [...]}` messages, the Messages API's shape); each adapter converts them to its
provider's wire format when it sends them and converts the answer back, so a session's history
replays to any provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from config.errors import CodedError


class Provider:
    ANTHROPIC = "anthropic"
    OPENAI = "openai"


@dataclass(frozen=True)
class ModelSettings:
    """Everything needed to call the model for one turn."""

    model: str
    api_key: str
    base_url: str | None = None
    max_tokens: int = 4096
    # A base URL an ordinary user chose: every connection passes the egress policy (config/egress.py).
    guard_egress: bool = False
    provider: str = Provider.ANTHROPIC
    # Sampling temperature, sent to OpenAI-compatible providers only, and only when it differs from
    # their default of 1 (reasoning models refuse any other value). The Messages API version the
    # anthropic SDK speaks (2026-10-21) refuses `temperature`, `top_p` and `top_k` with a 400.
    temperature: float | None = None


# Appended to "no API key" errors: a first-time user can try Conduit without one.
NO_KEY_HINT = "To try Conduit without a key, start it with `python3 dev.py run --demo` (a stand-in model)."


class LLMError(CodedError):
    """A failure of the model call, with a stable code for clients and a message for people."""

    def __init__(self, code: str, message: str, *, retryable: bool = False):
        super().__init__(code, message)
        self.retryable = retryable


# The most tokens one figure of one call may claim. Counts come from the provider, and a user's own
# endpoint is the user's: a negative count would lower the usage counters (the organization's too),
# a huge one overflow them or the message's columns. No model comes near this.
MAX_REPORTED_TOKENS = 10_000_000


def token_count(value: Any) -> int:
    """A token count as a provider reported it, made safe to store: a number clamped to
    0…MAX_REPORTED_TOKENS; anything else (null, a string, a bool) 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # NaN != NaN
        return 0
    return int(min(max(value, 0), MAX_REPORTED_TOKENS))


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    # Some figure is an estimate (assistant.llm.estimates), not the provider's count. Not in as_dict:
    # what is stored and sent stays the four counts.
    estimated: bool = False

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_input_tokens += other.cache_read_input_tokens
        self.cache_creation_input_tokens += other.cache_creation_input_tokens
        self.estimated = self.estimated or other.estimated

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
        }

    @classmethod
    def from_api(cls, usage: dict[str, Any]) -> Usage:
        """From the Messages API's usage object (its JSON)."""
        return cls(
            input_tokens=token_count(usage.get("input_tokens", 0)),
            output_tokens=token_count(usage.get("output_tokens", 0)),
            cache_read_input_tokens=token_count(usage.get("cache_read_input_tokens", 0)),
            cache_creation_input_tokens=token_count(usage.get("cache_creation_input_tokens", 0)),
        )


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolChoice:
    """Which tools the model must or may call: `auto`, `none`, `required` (some tool), or `tool`
    (the one named `name`). Each adapter says it in its provider's terms."""

    mode: str = "auto"
    name: str = ""


@dataclass(frozen=True)
class ResponseFormat:
    """The answer must be JSON: `json_object` (any object) or `json_schema` (valid against `schema`,
    which `strict` asks the provider to enforce). The answer's text is the JSON, whatever the
    provider's mechanism (Chat Completions' response_format; a forced tool on the Messages API)."""

    kind: str  # json_object | json_schema
    name: str = "response"
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str = ""


@dataclass(frozen=True)
class ModelCall:
    """One request to the model, provider-neutral."""

    messages: list[dict[str, Any]]
    system: str = ""
    # Tool definitions in the Messages API's format: {name, description, input_schema}.
    tools: list[dict[str, Any]] = field(default_factory=list)
    stop_sequences: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    tool_choice: ToolChoice | None = None  # None: the provider's default (auto)
    parallel_tool_calls: bool | None = None  # False: at most one call per answer
    response_format: ResponseFormat | None = None


# --- events of one model call -------------------------------------------------------------------


@dataclass
class TextDelta:
    text: str


@dataclass
class ThinkingDelta:
    text: str


@dataclass
class UsageReported:
    """The usage of the model call in progress so far (cumulative for that call): what a stopped,
    cut-off or failed call still counts.

    The contract, the same for every adapter: once the provider has accepted the call (its answer's
    headers came), the adapter yields UsageReported with the call's one Usage object, which it then
    keeps up to date *in place*, with no event per delta (the relay is a hot path):
    - at first an estimate (`usage.estimated`; assistant.llm.estimates): input tokens from what was
      sent, output tokens growing with the text, thinking and tool arguments received;
    - the provider's own figures replace the estimate as they come, each time with UsageReported
      again (the same object): Anthropic reports input at `message_start` (output stays estimated
      until `message_delta`), Chat Completions everything in its last chunk (with
      `stream_options.include_usage`; some compatible servers never send it: the estimate stands).
    A consumer keeps the reference and reads it when a stop, cancel or failure lands; it copies the
    object to keep a snapshot. A call cancelled before the provider answered has reported nothing.
    ModelCallFinished carries a copy of the final figures."""

    usage: Usage


@dataclass
class ToolUseRequested:
    call: ToolCall


@dataclass
class ModelCallFinished:
    """The whole answer, its content in the stored block format and its stop reason in ours:
    end_turn, max_tokens, tool_use, stop_sequence, refusal."""

    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: Usage
    model: str


CallEvent = TextDelta | ThinkingDelta | UsageReported | ToolUseRequested | ModelCallFinished
