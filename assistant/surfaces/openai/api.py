"""Conduit's agents as OpenAI-compatible models: `GET /v1/models`, `POST /v1/chat/completions`
(`/v1/responses` and `/v1/embeddings` are responses.py and embeddings.py); any other `/v1` path
answers OpenAI's 404 in OpenAI's shape.

For the tools people already use with the OpenAI API (Open WebUI, LibreChat, Continue, the `openai`
SDK), with a personal API key (`cdk_…`) or an access token as the bearer token.

A chat completion is one turn of the shared turn runner (assistant.runs), like a websocket or SSE
turn: the last user message runs through `turn_begin` + `TurnRunner`, so the agent's system prompt,
config and tools, the history, usage accounting and the per-user turn limit all apply. One
conversation is one session: a request whose earlier messages are the conversation of one of the
user's `/v1` sessions (by digest, see `chat_turn_begin`) is its next turn, the `X-Session-ID` header
names one to continue, and any other request starts a new session holding the client's earlier
messages (in the neutral block format). Client `system`/`developer` messages are added after the
agent's system prompt (the agent's instructions come first and can't be replaced by a client).

A client that disconnects stops the turn, streaming or not: nobody can read the rest of the answer
(an OpenAI client can't resume), and the partial answer is kept in the session marked `stopped`.

Errors before the answer starts are HTTP errors in OpenAI's shape; a streamed answer waits for the
model's first output before it sends its 200, so an upstream failure at the start is a 502/504 too.
A failure after that is a final `data: {"error": …}` event (what OpenAI's SDKs raise as APIError).
The chat view is served on the ASGI path (config/asgi.py), so it can wait and stream without a thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import replace
from typing import Any, AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.settings import api_settings

from agents import selectors as agent_selectors
from agents.models import AIAgent
from assistant import runs, services
from assistant.engine import ApprovalGate, ToolCall, ToolOutcome
from assistant.surfaces.openai import format as wire
from assistant.surfaces.openai.chat_options import conflict_param
from assistant.surfaces.openai.format import OpenAIError
from config import untrusted
from config.threads import run_sync

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15
NO_CREDENTIALS = "No API key given: send `Authorization: Bearer cdk_…` (a personal API key) or an access token."


def _error_response(error: OpenAIError) -> JsonResponse:
    headers = dict(error.headers)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return JsonResponse(error.body(), status=error.status, headers=headers)


# --- who is asking --------------------------------------------------------------------------------


def _bearer_authentication_classes() -> list[type]:
    """The API's authentication classes (settings.REST_FRAMEWORK) but the cookie session's."""
    return [cls for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES if not issubclass(cls, SessionAuthentication)]


def authenticated_user(request: HttpRequest):
    """The user behind the request's bearer token: a personal API key, a local access token or a
    provider token. No cookie sessions here (no CSRF to check on a bearer-only API).
    Raises OpenAIError (401, or 503 when the sign-in provider's keys can't be fetched)."""
    drf_request = Request(request, authenticators=[cls() for cls in _bearer_authentication_classes()])
    try:
        user = drf_request.user
    except exceptions.APIException as exc:
        detail = exc.detail.get("detail", exc.detail) if isinstance(exc.detail, dict) else exc.detail
        if exc.status_code == 401 or isinstance(exc, exceptions.AuthenticationFailed):
            raise OpenAIError(401, str(detail), code="invalid_api_key") from None
        raise OpenAIError(exc.status_code, str(detail), type="server_error", code=str(exc.default_code)) from None
    if user is None or not user.is_authenticated:
        raise OpenAIError(401, NO_CREDENTIALS, code="invalid_api_key")
    return user


# --- models ---------------------------------------------------------------------------------------


def _model_object(agent: AIAgent) -> dict[str, Any]:
    return {
        "id": agent.slug,
        "object": "model",
        "created": int(agent.created_at.timestamp()),
        "owned_by": "organization" if agent.owner_id is None else "user",
    }


def usable_agents(*, user):
    """The agents a user may talk to: the organization's and their own, active."""
    return agent_selectors.agent_visible(user=user).prefetch_related(None).filter(is_active=True).order_by("slug", "id")


@csrf_exempt  # bearer tokens only (no cookie session here): a POST gets its 405, not a CSRF page
def models_list(request: HttpRequest) -> JsonResponse:
    """`GET /v1/models`: the agents the caller may use, `id` = the agent's slug."""
    try:
        _only(request, "GET")
        user = authenticated_user(request)
    except OpenAIError as error:
        return _error_response(error)
    return JsonResponse({"object": "list", "data": [_model_object(agent) for agent in usable_agents(user=user)]})


@csrf_exempt
def model_detail(request: HttpRequest, model: str) -> JsonResponse:
    """`GET /v1/models/{model}`: one agent the caller may use."""
    try:
        _only(request, "GET")
        user = authenticated_user(request)
        agent = usable_agents(user=user).filter(slug=model).first()
        if agent is None:
            raise _model_not_found(model)
    except OpenAIError as error:
        return _error_response(error)
    return JsonResponse(_model_object(agent))


def _only(request: HttpRequest, method: str) -> None:
    if request.method != method:
        raise wire.method_not_allowed(request.method, request.path, method)


@csrf_exempt
def unknown_path(request: HttpRequest) -> JsonResponse:
    """Any other path under `/v1` (`/v1/assistants`, a typo): OpenAI's 404, in its
    shape, so that an OpenAI client says what went wrong instead of only "404"."""
    return _error_response(wire.unknown_url(request.method, request.path))


def _model_not_found(model: str) -> OpenAIError:
    return OpenAIError(
        404, f"The model `{model}` does not exist or you do not have access to it (see GET /v1/models).",
        code="model_not_found", param="model",
    )  # fmt: skip


# --- chat completions -----------------------------------------------------------------------------


# A session found by its conversation that can't take a turn now: the request starts a new session.
_CONTINUATION_REFUSALS = {"not_found", "turn_in_progress", "approval_pending", "agent_unavailable"}


def chat_turn_begin(*, user, chat: wire.ChatRequest, session_id: int | None = None) -> tuple[runs.TurnPlan, bool]:
    """The turn answering the client's last message, planned (runs.turn_begin) with the client's options:
    - with `session_id` (the X-Session-ID header), the next turn of that session of the user with the
      agent `chat.model` (else a 404): the session's stored messages are the history;
    - else, when the client's earlier messages are a conversation the user had with the agent through
      `/v1` (their digest is that of a session after its last turn), the next turn of that session;
    - else a new session holding the client's earlier messages (one transaction: a refused turn
      leaves no session behind).
    Returns the plan and whether it continues a session. Raises OpenAIError."""
    prompt, content = chat.prompt, chat.prompt_blocks
    title = (f"[{chat.user}] " if chat.user else "") + (prompt.strip().replace("\n", " ")[:80] or _untitled(content))
    try:
        plan = None
        if session_id is not None:
            if not services.v1_session_exists(user=user, agent_slug=chat.model, session_id=session_id):
                raise _session_not_found(session_id, chat.model)
            plan = _continued(user, prompt, content, session_id, chat.model)
        elif chat.history:
            digest = wire.conversation_digest(chat.model, chat.history)
            found = services.v1_conversation_session(user=user, agent_slug=chat.model, digest=digest)
            if found is not None:
                try:
                    plan = runs.turn_begin(user=user, text=prompt, content=content, session_id=found)
                except runs.TurnRefused as refused:
                    if refused.code not in _CONTINUATION_REFUSALS:
                        raise
        continued = plan is not None
        if plan is None:
            plan = runs.turn_begin(
                user=user, text=prompt, content=content, agent_slug=chat.model, title=title, history=chat.history
            )
    except runs.TurnRefused as refused:
        if refused.code == "not_found":
            raise _model_not_found(chat.model) from None
        if refused.field == "custom_properties":  # the agent needs custom properties, which this API can't give
            raise OpenAIError(400, refused.message, code="invalid_value", param="model") from None
        raise OpenAIError.from_code(refused.code, refused.message) from None
    request = plan.request
    model = request.model
    if chat.max_tokens is not None:
        model = replace(model, max_tokens=min(model.max_tokens, chat.max_tokens))
    system = "\n\n".join(part for part in (request.system, chat.system) if part)
    # No one can approve a tool call in the middle of an OpenAI request: held calls are denied at once,
    # with a result telling the model why (docs/approvals.md).
    approval = request.approval and ApprovalGate(request.approval.required, _denied_over_api)
    plan.request = replace(
        request, model=model, system=system, stop_sequences=chat.stop or request.stop_sequences, approval=approval,
        client_tools=chat.tools, tool_choice=chat.tool_choice, parallel_tool_calls=chat.parallel_tool_calls,
        response_format=chat.response_format,
    )  # fmt: skip
    return plan, continued


def _untitled(content: list[dict[str, Any]]) -> str:
    return "(tool results)" if any(b["type"] == "tool_result" for b in content) else "(image)"


def _continued(user, prompt: str, content: list, session_id: int, model: str) -> runs.TurnPlan:
    try:
        return runs.turn_begin(user=user, text=prompt, content=content, session_id=session_id)
    except runs.TurnRefused as refused:
        if refused.code == "not_found":  # deleted meanwhile
            raise _session_not_found(session_id, model) from None
        raise


def _session_not_found(session_id: int | str, model: str) -> OpenAIError:
    return OpenAIError(
        404, f"No session {session_id} of yours with the model `{model}` (the X-Session-ID header).",
        code="session_not_found", param=None,
    )  # fmt: skip


def _session_header(request: HttpRequest, model_hint: str = "") -> int | None:
    """The X-Session-ID header: the id of a session of the user to continue (None: not sent)."""
    value = request.headers.get("X-Session-ID", "").strip()
    if not value:
        return None
    try:
        return untrusted.db_int(value, name="X-Session-ID")
    except untrusted.UnsafeInput:
        raise _session_not_found(value[:40], model_hint) from None


async def _denied_over_api(call: ToolCall) -> ToolOutcome:
    return runs.denial_over_api(call)


def _chat_prepare(request: HttpRequest) -> tuple[Any, wire.ChatRequest, bool, runs.TurnPlan]:
    user = authenticated_user(request)
    chat = wire.parse_chat_request(wire.parse_body(read_body(request, limit=settings.V1_CHAT_MAX_BODY_BYTES)))
    session_id = _session_header(request, chat.model)
    plan, continued = chat_turn_begin(user=user, chat=chat, session_id=session_id)
    plan.transport = "openai"
    return user, chat, continued, plan  # the plan last: see runs.turn_start_when_planned


def read_body(request: HttpRequest, *, limit: int | None = None) -> bytes:
    """The request's body, at most `limit` bytes (default DATA_UPLOAD_MAX_MEMORY_SIZE; else a 413 OpenAIError)."""
    if limit is None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        # Read at most one byte past the limit: a body without Content-Length (chunked) isn't
        # checked by Django's `request.body`, which would read it whole.
        raw = request.read(limit + 1) if limit is not None else request.read()
    except RequestDataTooBig:
        raw = None
    if raw is None or (limit is not None and len(raw) > limit):
        raise OpenAIError(413, f"The request body is larger than the limit of {limit} bytes.", code="request_too_large")
    return raw


class _Relay:
    """Reads one turn's events from its runner (same process) for one HTTP answer."""

    def __init__(self, user, plan: runs.TurnPlan, chat: wire.ChatRequest, *, continued: bool) -> None:
        self.user = user
        self.continued = continued
        self.plan = plan
        self.chat = chat
        self.answer: list[str] = []  # the text sent to the client
        self.queue: asyncio.Queue = asyncio.Queue()
        self.runner = runs.TurnRunner(plan, listeners=[self.queue])
        self.completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.text_started = False
        self.tool_since_text = False  # a tool ran since the last text: the next text starts a new paragraph

    def start(self) -> None:
        self.runner.start()

    def stop_if_running(self) -> None:
        if not self.runner.done.is_set():
            self.runner.request_stop()  # the client left: keep what was said as `stopped`

    def text_of(self, frame: dict[str, Any]) -> str:
        """The text a frame adds to the answer ('' for other frames). Text of the agent's next model
        call (after a tool ran) starts a new paragraph."""
        if frame["type"] == "tool_use":
            self.tool_since_text = self.text_started
            return ""
        if frame["type"] != "text_delta" or not frame["text"]:
            return ""
        text = frame["text"]
        if self.tool_since_text:
            text = "\n\n" + text
            self.tool_since_text = False
        self.text_started = True
        self.answer.append(text)
        return text

    async def conversation_moved_on(self, calls: list[ToolCall]) -> None:
        """The answer is whole: the session now holds the conversation as the client will have it
        (the answer's text and the calls of its tools). Recorded before the client reads the end of
        the answer, so its next request finds it."""
        digest = wire.conversation_digest(self.chat.model, self.chat.conversation("".join(self.answer), calls))
        try:
            await run_sync(
                services.v1_conversation_moved_on, user=self.user, session_id=self.plan.session_id, digest=digest,
                continued=self.continued,
            )  # fmt: skip
        except DatabaseError:  # the answer is whole and stored: only its continuation by history is lost
            logger.warning("Session %s: its /v1 conversation could not be recorded", self.plan.session_id, exc_info=True)

    async def next_frame(self, timeout: float | None = None) -> dict[str, Any]:
        return await asyncio.wait_for(self.queue.get(), timeout)

    def chunk(self, **fields: Any) -> dict[str, Any]:
        return wire.chunk(
            completion_id=self.completion_id, created=self.created, model=self.chat.model,
            with_usage_field=self.chat.include_usage, **fields,
        )  # fmt: skip


def _error_of(frame: dict[str, Any], chat: wire.ChatRequest) -> OpenAIError:
    if frame["code"] == "tool_name_conflict":  # found once the agent's tools were opened
        return OpenAIError(400, frame["message"], code="invalid_value", param=conflict_param(chat.tools, frame["message"]))
    return OpenAIError.from_code(frame["code"], frame["message"])


def _sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n".encode()


async def _stream(relay: _Relay, first: dict[str, Any]) -> AsyncIterator[bytes]:
    """The answer as `chat.completion.chunk` events, starting with `first`, the first frame after
    the turn's `session` frame (already read, to choose the status)."""
    try:
        yield _sse(relay.chunk(delta={"role": "assistant", "content": ""}))
        frame = first
        while True:
            if frame["type"] == "error":
                yield _sse(_error_of(frame, relay.chat).body())
                yield _sse("[DONE]")
                return
            if frame["type"] == "result":
                calls = wire.client_calls_of(frame)
                await relay.conversation_moved_on(calls)
                for delta in wire.tool_call_deltas(calls):
                    yield _sse(relay.chunk(delta=delta))
                yield _sse(relay.chunk(finish=wire.finish_reason(frame.get("stop_reason"), calls)))
                if relay.chat.include_usage:
                    yield _sse(relay.chunk(usage=wire.openai_usage(frame.get("usage") or {})))
                yield _sse("[DONE]")
                return
            text = relay.text_of(frame)
            if text:
                yield _sse(relay.chunk(delta={"content": text}))
            try:
                frame = await relay.next_frame(KEEPALIVE_SECONDS)
            except TimeoutError:
                yield b": keep-alive\n\n"  # an agent's tool may run long; proxies must not time out
                frame = {"type": "keepalive"}
    finally:
        relay.stop_if_running()


async def _first_answer_frame(relay: _Relay) -> dict[str, Any]:
    while True:
        frame = await relay.next_frame()
        if frame["type"] != "session":
            return frame


async def _whole_answer(relay: _Relay) -> JsonResponse:
    text = []
    while True:
        frame = await relay.next_frame()
        if frame["type"] == "error":
            return _error_response(_error_of(frame, relay.chat))
        if frame["type"] == "result":
            calls = wire.client_calls_of(frame)
            await relay.conversation_moved_on(calls)
            body = wire.completion(
                completion_id=relay.completion_id, created=relay.created, model=relay.chat.model, text="".join(text),
                stop_reason=frame.get("stop_reason"), usage=frame.get("usage") or {}, calls=calls,
            )  # fmt: skip
            return JsonResponse(body)
        text.append(relay.text_of(frame))


@csrf_exempt
async def chat_completions(request: HttpRequest):
    """`POST /v1/chat/completions`: `model` is an agent's slug; see the module's docstring."""
    try:
        _only(request, "POST")
        # As Django runs a sync view: in the request's thread-sensitive context, whose database
        # connection Django's request signals close (channels' database_sync_to_async would close
        # the caller's connection too: the test's own, in process).
        planning = asyncio.ensure_future(sync_to_async(_chat_prepare, thread_sensitive=True)(request))
        try:
            user, chat, continued, plan = await asyncio.shield(planning)
        except asyncio.CancelledError:  # the client left: a turn planned meanwhile is kept `stopped`
            asyncio.ensure_future(runs.turn_start_when_planned(planning))
            raise
    except OpenAIError as error:
        return _error_response(error)
    relay = _Relay(user, plan, chat, continued=continued)
    relay.start()
    streaming = False
    try:
        if not chat.stream:
            response = await _whole_answer(relay)
        else:
            first = await _first_answer_frame(relay)
            if first["type"] == "error":
                response = _error_response(_error_of(first, chat))
            else:
                response = StreamingHttpResponse(_stream(relay, first), content_type="text/event-stream; charset=utf-8")
                response["Cache-Control"] = "no-cache"
                response["X-Accel-Buffering"] = "no"  # nginx: don't buffer the stream
                streaming = True
    finally:
        # Django cancels an async view whose client disconnects: the turn stops with it. (A streamed
        # answer's generator takes over that duty once it is handed out.)
        if not streaming:
            relay.stop_if_running()
    response["X-Session-ID"] = str(plan.session_id)
    return response
