"""The OpenAI Responses API over Conduit's agents: `POST /v1/responses`, `GET /v1/responses/{id}`.

A response is a turn of a session, planned and relayed exactly as a chat completion is (api.py:
`chat_turn_begin`, `_Relay`); only the wire format differs (responses_format.py). `model` is an
agent's slug; `instructions` are added after the agent's system prompt. Which session:
- `previous_response_id`: the session of that response (one of the caller's, stored; else a 404);
  `input` then holds only the new message, the session's stored messages being the history. A
  response that was continued since (not its session's last answer) branches, as on OpenAI: a new
  session starts from a copy of the messages up to that response's answer;
- else, as on chat completions: the session whose `/v1` conversation the input's earlier items
  continue, or the one the `X-Session-ID` header names, else a new one.
The answer is stored (`StoredResponse`) for `GET /v1/responses/{id}` and `previous_response_id`,
unless `store` is false (the turn is still kept in its session, as every turn is).

`stream: true` sends the documented events (`response.created`, `response.in_progress`,
`response.output_item.added`, `response.content_part.added`, `response.output_text.delta`…,
`response.output_text.done`, `response.content_part.done`, `response.output_item.done`,
`response.completed` or `response.incomplete`), each with its `sequence_number`. Calls of the
client's function tools end the answer as `function_call` output items (their own events after the
message's); the next request's `function_call_output` items continue the session. As on chat
completions, the 200 waits for the model's first output: an upstream failure at the start is a
502/504; later, an `error` event and `response.failed`. A client that disconnects stops the turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from typing import Any, AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from agents.models import Message
from assistant import runs, services
from assistant.engine import ToolCall
from assistant.models import StoredResponse
from assistant.surfaces.openai import api
from assistant.surfaces.openai import format as wire
from assistant.surfaces.openai import responses_format as rwire
from assistant.surfaces.openai.format import OpenAIError
from assistant.surfaces.openai.responses_options import responses_param
from config.threads import run_sync

logger = logging.getLogger(__name__)


def _previous_not_found(response_id: str) -> OpenAIError:
    return OpenAIError(404, f"Previous response with id '{response_id}' not found.",
                       code="previous_response_not_found", param="previous_response_id")  # fmt: skip


def _responses_prepare(request: HttpRequest):
    user = api.authenticated_user(request)
    wanted = rwire.parse_responses_request(wire.parse_body(api.read_body(request, limit=settings.V1_CHAT_MAX_BODY_BYTES)))
    chat = wanted.chat
    session_id = None
    if wanted.previous_response_id:
        previous = (
            StoredResponse.objects.filter(pk=wanted.previous_response_id, owner=user)
            .values("session_id", "message_id", "body__model", "body__output").first()
        )  # fmt: skip
        if previous is None:
            raise _previous_not_found(wanted.previous_response_id)
        _check_answered_calls(wanted.previous_call_ids, previous["body__output"] or [])
        if previous["body__model"] != chat.model:
            raise wire.bad_request(
                f"The previous response was answered by the model `{previous['body__model']}`: continue it with the same model.",
                "model",
            )  # fmt: skip
        if chat.history:
            raise wire.bad_request(
                "With `previous_response_id`, `input` holds only the new message: the earlier ones are stored.", "input"
            )  # fmt: skip
        history = _branch_history(previous["session_id"], previous["message_id"])
        if history is None:
            session_id = previous["session_id"]
        else:  # an earlier response of its session: a new session goes on from there, as OpenAI branches
            chat = wanted.chat = replace(chat, history=history)
    else:
        session_id = api._session_header(request, chat.model)
    plan, continued = api.chat_turn_begin(user=user, chat=chat, session_id=session_id)
    plan.transport = "openai"
    return user, wanted, continued, plan  # the plan last: see runs.turn_start_when_planned


def _check_answered_calls(call_ids: list[str], output: list[dict[str, Any]]) -> None:
    """`function_call_output` items going on from a response answer calls it made."""
    made = {item.get("call_id") for item in output if isinstance(item, dict) and item.get("type") == "function_call"}
    for index, call_id in enumerate(call_ids):
        if call_id not in made:
            raise wire.bad_request(
                f"No function call with call_id '{call_id[:64]}' in the previous response.", f"input[{index}].call_id"
            )  # fmt: skip


def _branch_history(session_id: int, message_id: int | None) -> list[tuple[str, list[dict[str, Any]]]] | None:
    """None when the response's answer is still its session's last answer (the session goes on: after
    it may come only the results of the agent's own tools it called beside the client's); else the
    session's messages up to that answer, for a new session branching off there."""
    messages = Message.objects.filter(session_id=session_id).order_by("-seq")
    last = messages.values_list("pk", flat=True).first()
    if message_id is None or last == message_id:
        return None
    answer = messages.filter(pk=message_id).values_list("seq", flat=True).first()
    if answer is None or not messages.filter(seq__gt=answer, role="assistant").exists():
        return None
    kept = messages.filter(seq__lte=answer).order_by("seq").values_list("role", "content")
    return [(role, list(content or [])) for role, content in kept]


class _ResponseRelay(api._Relay):
    def __init__(self, user, plan: runs.TurnPlan, wanted: rwire.ResponsesRequest, *, continued: bool) -> None:
        super().__init__(user, plan, wanted.chat, continued=continued)
        self.wanted = wanted
        self.state = rwire.ResponseState(wanted)

    async def conversation_moved_on(self, calls: list[ToolCall]) -> None:
        if self.wanted.previous_response_id is None:
            await super().conversation_moved_on(calls)
            return
        # The client holds a response id, not the conversation: no request's messages will digest to
        # this session's now, and the conversation it had before this turn must not continue it.
        try:
            await run_sync(
                services.v1_conversation_moved_on, user=self.user, session_id=self.plan.session_id,
                digest=wire.conversation_digest(self.chat.model, [("response", [{"id": self.state.response_id}])]),
                continued=True,
            )  # fmt: skip
        except DatabaseError:
            logger.warning("Session %s: its /v1 conversation could not be recorded", self.plan.session_id, exc_info=True)

    async def keep(self) -> None:
        """Store the response (unless `store: false`) for GET and previous_response_id."""
        if not self.wanted.store:
            return
        try:
            await run_sync(
                StoredResponse.objects.create, id=self.state.response_id, owner=self.user, session_id=self.plan.session_id,
                message_id=self.plan.assistant_message_id, body=self.state.body(),
            )  # fmt: skip
        except DatabaseError:  # the answer is whole and in its session: only its id can't be continued
            logger.warning("Response %s could not be stored", self.state.response_id, exc_info=True)


def _error_of(frame: dict[str, Any], chat: wire.ChatRequest) -> OpenAIError:
    error = api._error_of(frame, chat)
    if error.param:  # a client tool named like one of the agent's: `tools[i].function.name` there
        error.param = responses_param(error.param)
    return error


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _stream(relay: _ResponseRelay, first: dict[str, Any]) -> AsyncIterator[bytes]:
    state = relay.state
    try:
        for name, data in state.opening_events():
            yield _sse(name, data)
        frame = first
        while True:
            if frame["type"] == "error":
                state.fail(_error_of(frame, relay.chat))
                await relay.keep()
                for name, data in state.failed_events():
                    yield _sse(name, data)
                return
            if frame["type"] == "result":
                calls = wire.client_calls_of(frame)
                await relay.conversation_moved_on(calls)
                state.finish(stop_reason=frame.get("stop_reason"), usage=frame.get("usage") or {}, calls=calls)
                await relay.keep()
                for name, data in state.closing_events():
                    yield _sse(name, data)
                return
            text = relay.text_of(frame)
            if text:
                for name, data in state.delta_events(text):
                    yield _sse(name, data)
            try:
                frame = await relay.next_frame(api.KEEPALIVE_SECONDS)
            except TimeoutError:
                yield b": keep-alive\n\n"  # an agent's tool may run long; proxies must not time out
                frame = {"type": "keepalive"}
    finally:
        relay.stop_if_running()


async def _whole_answer(relay: _ResponseRelay) -> JsonResponse:
    state = relay.state
    while True:
        frame = await relay.next_frame()
        if frame["type"] == "error":
            error = _error_of(frame, relay.chat)
            state.fail(error)
            await relay.keep()
            return api._error_response(error)
        if frame["type"] == "result":
            calls = wire.client_calls_of(frame)
            await relay.conversation_moved_on(calls)
            state.finish(stop_reason=frame.get("stop_reason"), usage=frame.get("usage") or {}, calls=calls)
            await relay.keep()
            return JsonResponse(state.body())
        state.text += relay.text_of(frame)


@csrf_exempt
async def responses_create(request: HttpRequest):
    """`POST /v1/responses`: see the module's docstring."""
    try:
        api._only(request, "POST")
        planning = asyncio.ensure_future(sync_to_async(_responses_prepare, thread_sensitive=True)(request))
        try:
            user, wanted, continued, plan = await asyncio.shield(planning)
        except asyncio.CancelledError:  # the client left: a turn planned meanwhile is kept `stopped`
            asyncio.ensure_future(runs.turn_start_when_planned(planning))
            raise
    except OpenAIError as error:
        return api._error_response(error)
    relay = _ResponseRelay(user, plan, wanted, continued=continued)
    relay.start()
    streaming = False
    try:
        if not wanted.chat.stream:
            response = await _whole_answer(relay)
        else:
            first = await api._first_answer_frame(relay)
            if first["type"] == "error":
                response = api._error_response(_error_of(first, relay.chat))
            else:
                response = StreamingHttpResponse(_stream(relay, first), content_type="text/event-stream; charset=utf-8")
                response["Cache-Control"] = "no-cache"
                response["X-Accel-Buffering"] = "no"
                streaming = True
    finally:
        if not streaming:
            relay.stop_if_running()
    response["X-Session-ID"] = str(plan.session_id)
    return response


@csrf_exempt
def response_detail(request: HttpRequest, response_id: str) -> JsonResponse:
    """`GET /v1/responses/{id}`: a stored response of the caller's (anyone else's is a 404).
    `DELETE`: forget it (it can't be retrieved or continued any more; its turn stays in its session)."""
    try:
        if request.method not in ("GET", "DELETE"):
            raise wire.method_not_allowed(request.method, request.path, "GET, DELETE")
        user = api.authenticated_user(request)
        mine = StoredResponse.objects.filter(pk=response_id, owner=user) if len(response_id) <= 64 else None
        stored = mine.values("body", "session_id").first() if mine is not None else None
        if stored is None:
            raise OpenAIError(404, f"Response with id '{response_id[:80]}' not found.", code=None, param=None)
    except OpenAIError as error:
        return api._error_response(error)
    if request.method == "DELETE":
        mine.delete()
        return JsonResponse({"id": response_id, "object": "response", "deleted": True})
    answer = JsonResponse(stored["body"])
    answer["X-Session-ID"] = str(stored["session_id"])
    return answer


@csrf_exempt
def legacy_completions(request: HttpRequest) -> JsonResponse:
    """`/v1/completions`, OpenAI's legacy text completions: not served; the 404 says what to use."""
    return api._error_response(OpenAIError(
        404, "The legacy Completions API (/v1/completions) is not served here: use POST /v1/chat/completions "
        "(or POST /v1/responses) with an agent's slug as `model`.", code="unsupported_endpoint", param=None,
    ))  # fmt: skip
