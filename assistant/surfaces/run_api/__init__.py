"""The run API: run an agent and stream the turn, as the platform's SSE or the Vercel AI SDK streams.

    POST /api/v1/agents/{slug}/run?protocol=sse|v5|v4   {"message", "session_id"?, "custom_properties"?}
                                                         or the AI SDK's chat request {"id", "messages", "trigger"}
    GET  /api/v1/sessions/{id}/events                    (header Last-Event-ID, or ?after=N) resume
    POST /api/v1/sessions/{id}/stop                      stop the session's running turn

The turn belongs to the server, not to the request: a client that disconnects leaves it running
(unlike code assistance), and resumes it by session and seq with the events endpoint. All three are
served on the ASGI path (config/asgi.py): the streams so their async iterators stream unbuffered,
the stop so it reaches the runners of this process's event loop.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, AsyncIterator

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import selectors as agent_selectors
from assistant import services
from assistant import runs
from assistant import wire
from config import untrusted
from config.errors import error_response
from config.threads import run_sync

KEEPALIVE_SECONDS = 15

# Refusals of turn_begin / turn_stop, before any byte is streamed.
REFUSAL_STATUS = {
    "not_found": status.HTTP_404_NOT_FOUND,
    "turn_in_progress": status.HTTP_409_CONFLICT,
    "no_turn": status.HTTP_409_CONFLICT,
    "approval_pending": status.HTTP_409_CONFLICT,
    "already_decided": status.HTTP_409_CONFLICT,
    "agent_unavailable": status.HTTP_409_CONFLICT,
    "not_configured": status.HTTP_409_CONFLICT,
    "connection_required": status.HTTP_409_CONFLICT,  # the user must connect an integration first
    "too_many_turns": status.HTTP_429_TOO_MANY_REQUESTS,
    "budget_exceeded": status.HTTP_429_TOO_MANY_REQUESTS,
}


def _refusal_response(refused: runs.TurnRefused, *, field: str) -> Response:
    if refused.code == "invalid":  # what the serializer can't see: the agent's custom-properties schema…
        raise ValidationError({field: [refused.message]})
    response = error_response(refused.message, refused.code, REFUSAL_STATUS.get(refused.code, status.HTTP_400_BAD_REQUEST))
    if refused.details:  # connection_required: the integration and its connect URL
        response.data["detail"].update(refused.details)
    return response


def _streaming_response(body: AsyncIterator[bytes], encoder, session_id: int) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type=encoder.content_type)
    for name, value in encoder.headers.items():
        response[name] = value
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: don't buffer the stream
    response["X-Session-ID"] = str(session_id)
    return response


class _StreamingApi(APIView):
    def perform_content_negotiation(self, request, force=False):
        # Clients ask for `text/event-stream`; errors before the stream starts are JSON all the same.
        return super().perform_content_negotiation(request, force=True)


# --- run --------------------------------------------------------------------------------------


class _TextField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):  # CharField would take 5 as "5"
            self.fail("invalid")
        return super().to_internal_value(data)


class RunRequest(serializers.Serializer):
    message = _TextField(min_length=1, max_length=settings.ASSISTANT_MAX_MESSAGE_CHARS, trim_whitespace=False)
    session_id = serializers.IntegerField(required=False, min_value=1, max_value=untrusted.MAX_DB_INT)
    custom_properties = serializers.DictField(
        required=False, help_text="Values for the agent's custom properties (new sessions only)."
    )

    def validate_message(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The message is empty.")
        return value

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "session_id" in data and "custom_properties" in data:
            raise serializers.ValidationError(
                {"custom_properties": ["Custom properties are set when a session starts; leave them out with "
                                       "`session_id`."]}  # fmt: skip
            )
        return data


MAX_UI_MESSAGES = 2_000
UI_TRIGGERS = ("submit-message", "regenerate-message")


class UIChatRequest(serializers.Serializer):
    """The AI SDK's own chat request (`useChat` with its `DefaultChatTransport`, AI SDK 5 and 6): the
    chat's `id`, its UI messages (`{id, role, parts: [{type: "text", text}, …]}`), the `trigger`.
    The last user message's text parts are the message; the chat's `id` names the session."""

    id = _TextField(max_length=128, help_text="The chat's id: the same id continues the same session.")
    messages = serializers.ListField(child=serializers.JSONField(), min_length=1, max_length=MAX_UI_MESSAGES)
    trigger = serializers.ChoiceField(choices=UI_TRIGGERS, required=False)
    messageId = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=256)  # noqa: N815
    custom_properties = serializers.DictField(
        required=False, help_text="Values for the agent's custom properties (the chat's first request only)."
    )

    def validate_id(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The chat id is empty.")
        return value

    def validate_messages(self, messages: list[Any]) -> list[Any]:
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str) or not isinstance(
                message.get("parts"), list
            ):
                raise serializers.ValidationError(f"messages[{index}] must be a UI message: {{id, role, parts: [...]}}.")
        return messages

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        messages = data["messages"]
        last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "user"), None)
        if last is None:
            raise serializers.ValidationError({"messages": ["There is no user message to answer."]})
        for part in messages[last]["parts"]:
            if isinstance(part, dict) and part.get("type") == "file":
                raise serializers.ValidationError(
                    {"messages": [f"messages[{last}]: file parts are not supported, only text parts."]}
                )
        text = _ui_text(messages[last])
        if not text.strip():
            raise serializers.ValidationError({"messages": [f"messages[{last}]: the user message has no text."]})
        if len(text) > settings.ASSISTANT_MAX_MESSAGE_CHARS:
            raise serializers.ValidationError(
                {"messages": [f"messages[{last}]: longer than {settings.ASSISTANT_MAX_MESSAGE_CHARS} characters."]}
            )
        data["message"] = text
        # The chat's earlier messages, for a session made on this request (a chat begun elsewhere).
        data["history"] = [
            (message["role"], [{"type": "text", "text": _ui_text(message)}])
            for message in messages[:last]
            if message["role"] in ("user", "assistant") and _ui_text(message)
        ]
        return data


def _ui_text(message: dict[str, Any]) -> str:
    """A UI message's text parts (its other parts: steps, tools, reasoning, data, sources are not the message)."""
    texts = [
        part["text"] for part in message["parts"]
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
    ]  # fmt: skip
    return "\n\n".join(text for text in texts if text)


async def _relay(runner: runs.TurnRunner, queue: asyncio.Queue, encoder) -> AsyncIterator[bytes]:
    """The turn's events as `encoder` writes them, until its result or error. The turn runs on
    if the client leaves (Django cancels this iterator then)."""
    try:
        while True:
            try:
                frame = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                if keepalive := encoder.keepalive():
                    yield keepalive
                continue
            if data := encoder.encode(frame):
                yield data
            if frame["type"] in wire.TERMINAL_EVENTS:
                return
    finally:
        if queue in runner.listeners:
            runner.listeners.remove(queue)  # nobody reads it any more


RunEvent = inline_serializer(
    "RunEvent",
    fields={
        "type": serializers.ChoiceField(
            choices=["session", "text_delta", "thinking_delta", "tool_use", "tool_result", "approval_request",
                     "approval_decision", "result", "error"]
        ),
        "session_id": serializers.IntegerField(),
        "seq": serializers.IntegerField(),
    },
)
PROTOCOL = OpenApiParameter(
    "protocol", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False, enum=list(wire.PROTOCOLS),
    description="`sse` (default; `v5` for the AI SDK's chat request): the platform's events, `id:` = seq. `v5`: "
    "the Vercel AI SDK UI-message stream (header `x-vercel-ai-ui-message-stream: v1`). `v4`: the AI SDK data stream "
    "(header `x-vercel-ai-data-stream: v1`).",
)  # fmt: skip
STREAM_DESCRIPTION = (
    "`protocol=sse`: `id: <seq>` and `data: <event JSON>` per event (`session`, `text_delta`, `thinking_delta`, "
    "`tool_use`, `tool_result`, `approval_request`, `approval_decision`, then `result` or `error`; a turn whose "
    "tool calls wait for approval ends with a `result` of status `awaiting_approval`, and goes on after the decision "
    "(POST /api/v1/sessions/{id}/approvals/{approval_id}) on GET /api/v1/sessions/{id}/events). `v5`: "
    "`data: <UI message chunk>` lines (approvals as `data-approval-request` / `data-approval-decision` parts) ending with "
    "`data: [DONE]`. `v4` (text/plain): `CODE:JSON` lines (`0:` text, `g:` reasoning, `9:` tool call, `a:` tool "
    "result, `3:` error, `f:`/`e:` step start/finish, `d:` finish with usage). Header X-Session-ID: the session. "
    "A client that disconnects leaves the turn running: resume with GET /api/v1/sessions/{id}/events, or by "
    "sending the same request with `session_id` and a `Last-Event-ID` header (the turn is not run again)."
)


class RunApi(_StreamingApi):
    """Run an agent: start (or continue) your session with it and stream the turn."""

    @extend_schema(
        tags=["assistant"],
        operation_id="agents_run",
        parameters=[PROTOCOL],
        request=PolymorphicProxySerializer(
            component_name="RunBody", serializers=[RunRequest, UIChatRequest], resource_type_field_name=None
        ),
        responses={
            (200, "text/event-stream"): OpenApiResponse(RunEvent, description=STREAM_DESCRIPTION),
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="`protocol=v4`: the data stream."),
            400: OpenApiResponse(description="Invalid input or protocol, with per-field messages."),
            404: OpenApiResponse(description="No such active agent, or no such session of yours with it."),
            409: OpenApiResponse(
                description="A turn is already running in this session (`turn_in_progress`), or the agent can't "
                "run now (`agent_unavailable`, `not_configured`)."
            ),
            429: OpenApiResponse(
                description="Too many answers of this user running at once (`too_many_turns`), or a budget is "
                "used up (`budget_exceeded`)."
            ),
        },
    )
    def post(self, request: Request, slug: str):
        ui_chat = isinstance(request.data, dict) and "messages" in request.data and "message" not in request.data
        # useChat's transport POSTs to its `api` as is and reads the UI-message stream: v5 by default.
        protocol = request.query_params.get("protocol") or ("v5" if ui_chat else "sse")
        if protocol not in wire.PROTOCOLS:
            raise ValidationError({"protocol": [f"Use one of: {', '.join(wire.PROTOCOLS)}."]})
        if ui_chat:
            return self._ui_chat(request, slug, protocol)
        serializer = RunRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if request.headers.get("Last-Event-ID") not in (None, ""):
            return self._resume(request, slug, protocol, data)
        try:
            plan = services.run_turn_begin(
                user=request.user, agent_slug=slug, message=data["message"], session_id=data.get("session_id"),
                custom_properties=data.get("custom_properties"),
            )  # fmt: skip
        except runs.TurnRefused as refused:
            return _refusal_response(refused, field="custom_properties")
        return self._stream(plan, protocol)

    def _ui_chat(self, request: Request, slug: str, protocol: str):
        """The AI SDK's chat request: its `id` names the session (made on the chat's first request)."""
        serializer = UIChatRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            plan = services.ui_chat_turn_begin(
                user=request.user, agent_slug=slug, chat_id=data["id"], message=data["message"],
                history=data["history"], custom_properties=data.get("custom_properties"),
            )  # fmt: skip
        except runs.TurnRefused as refused:
            return _refusal_response(refused, field="custom_properties")
        return self._stream(plan, protocol)

    @staticmethod
    def _stream(plan: runs.TurnPlan, protocol: str) -> StreamingHttpResponse:
        encoder = wire.encoder_for(protocol)
        runner, queue = runs.turn_start_from_sync(plan)
        return _streaming_response(_relay(runner, queue, encoder), encoder, plan.session_id)

    def _resume(self, request: Request, slug: str, protocol: str, data: dict[str, Any]):
        """A client that retries the POST with `Last-Event-ID` (as SSE libraries do after a dropped
        connection) resumes the session's stream rather than running the message a second time."""
        if protocol != "sse" or "session_id" not in data:
            raise ValidationError({"Last-Event-ID": [
                "Resuming needs `protocol=sse` and the `session_id` (X-Session-ID); or use GET /api/v1/sessions/{id}/events."
            ]})  # fmt: skip
        after_seq = _resume_point(request)
        session_id = data["session_id"]
        if not agent_selectors.session_owned(user=request.user).filter(pk=session_id, agent__slug=slug).exists():
            return error_response("No such session.", "not_found", status.HTTP_404_NOT_FOUND)
        return _resume_response(request.user, session_id, after_seq)


# --- resume -----------------------------------------------------------------------------------


def _replay_start(user, session_id: int, after_seq: int | None) -> tuple[list[dict[str, Any]], bool]:
    """The stored events after `after_seq`, and whether to follow the session live after them. Read
    in the request's thread, before the response: what has ended streams without any more queries.
    Running is asked first: a turn that ends meanwhile has all its events stored by the read."""
    running = runs.turn_is_running(user=user, session_id=session_id)  # not_found for others' sessions
    stored = runs.turn_events_after(user=user, session_id=session_id, after_seq=after_seq)
    follow = running or bool(stored and stored[-1]["type"] not in wire.TERMINAL_EVENTS)
    return stored, follow


async def _replay_then_follow(user, session_id: int, after_seq: int | None, stored: list, follow: bool):
    """`stored` (from _replay_start), then, if `follow`, the running turn's live events until its
    result or error. Having subscribed, it reads the database once more: an event published before
    the subscription is stored already (turns are persisted, then published), and the seq filter
    drops what was read twice. Gaps (the channel layer may drop messages) are filled from the
    database, and a turn silent for ASSISTANT_GAP_CHECK_INTERVAL is checked there."""
    encode = wire.PlatformSseEncoder().encode
    last = stored[0]["seq"] - 1 if stored else (after_seq or 0)
    for frame in stored:
        yield encode(frame)
        last = frame["seq"]
    if not follow:
        return
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = runs.session_group(session_id)
    await layer.group_add(group, channel)
    events_after = functools.partial(run_sync, runs.turn_events_after)
    try:
        check_database = True
        idle = False
        while True:
            if check_database:
                missed = await events_after(user=user, session_id=session_id, after_seq=last)
                for frame in missed:
                    yield encode(frame)
                    last = frame["seq"]
                if missed and missed[-1]["type"] in wire.TERMINAL_EVENTS:
                    return
                running = await run_sync(runs.turn_is_running, user=user, session_id=session_id)
                if not missed and not running:
                    # Nothing running twice in a row, a check interval apart: its runner died (the
                    # stale-turn sweep closes it). Once could be a turn between two of its messages
                    # (a tool's results stored, the next model call's answer not opened yet).
                    if idle:
                        return
                    idle = True
                else:
                    idle = False
            try:
                message = await asyncio.wait_for(layer.receive(channel), settings.ASSISTANT_GAP_CHECK_INTERVAL)
            except TimeoutError:
                yield b": keep-alive\n\n"
                check_database = True
                continue
            check_database = False
            frame = message.get("event") or {}
            if frame.get("seq") is None or frame["seq"] <= last:
                continue
            if frame["seq"] > last + 1:
                for missed in await events_after(user=user, session_id=session_id, after_seq=last):
                    if missed["seq"] < frame["seq"]:
                        yield encode(missed)
            yield encode(frame)
            last = frame["seq"]
            if frame["type"] in wire.TERMINAL_EVENTS:
                return
    finally:
        await layer.group_discard(group, channel)


def _resume_response(user, session_id: int, after_seq: int | None) -> StreamingHttpResponse:
    stored, follow = _replay_start(user, session_id, after_seq)
    body = _replay_then_follow(user, session_id, after_seq, stored, follow)
    return _streaming_response(body, wire.PlatformSseEncoder(), session_id)


def _resume_point(request: Request) -> int | None:
    """`Last-Event-ID` (what an EventSource sends when it reconnects), else `?after=`."""
    header = request.headers.get("Last-Event-ID")
    if header not in (None, ""):
        name, value = "Last-Event-ID", header
    else:
        name, value = "after", request.query_params.get("after")
    if value in (None, ""):
        return None
    try:
        return untrusted.db_int(value.strip(), name=name)
    except untrusted.UnsafeInput as unsafe:
        raise ValidationError(unsafe.fields()) from None


class SessionEventsApi(_StreamingApi):
    """A session's events after a seq, then the running turn's live ones: how a client that lost the
    run stream (or any other) picks it up again."""

    @extend_schema(
        tags=["assistant"],
        operation_id="sessions_events",
        parameters=[
            OpenApiParameter("after", OpenApiTypes.INT, OpenApiParameter.QUERY, required=False,
                             description="Events after this seq (the `Last-Event-ID` header wins). Without either: "
                             "the latest turn from its start."),  # fmt: skip
            OpenApiParameter("Last-Event-ID", OpenApiTypes.INT, OpenApiParameter.HEADER, required=False,
                             description="The `id:` of the last event received."),  # fmt: skip
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                RunEvent, description="The platform's events as with `protocol=sse`; the stream ends after the turn's "
                "`result` or `error`, or at once when no turn is running and nothing is left to send."
            ),
            400: OpenApiResponse(description="`after` / `Last-Event-ID` is not a non-negative 64-bit integer."),
            404: OpenApiResponse(description="No such session of yours."),
        },
    )
    def get(self, request: Request, pk: str):
        after_seq = _resume_point(request)
        try:
            return _resume_response(request.user, _session_id(pk), after_seq)
        except runs.TurnRefused as refused:  # not_found: not a session of yours
            return _refusal_response(refused, field="id")


def _session_id(pk: str) -> int:
    try:
        return untrusted.db_int(pk, name="id")
    except untrusted.UnsafeInput:
        raise runs.TurnRefused("not_found", "No such session.") from None


class SessionStopApi(APIView):
    """Stop the session's running turn, whichever process runs it (as the websocket's `stop`)."""

    @extend_schema(
        tags=["assistant"],
        operation_id="sessions_stop",
        request=None,
        responses={
            202: inline_serializer(
                "StopAccepted",
                fields={
                    "session_id": serializers.IntegerField(),
                    "status": serializers.ChoiceField(choices=["stopping"]),
                },
            ),
            404: OpenApiResponse(description="No such session of yours."),
            409: OpenApiResponse(description="No turn is running in this session (`no_turn`)."),
        },
    )
    def post(self, request: Request, pk: str):
        try:
            session_id = _session_id(pk)
            # Checked here, in the request's thread; the stop itself is sent from the event loop,
            # where this process's runners live (see config/asgi.py).
            if not runs.turn_is_running(user=request.user, session_id=session_id):
                raise runs.TurnRefused("no_turn", "No turn is running in this session.")
            async_to_sync(runs.turn_stop)(user=request.user, session_id=session_id)
        except runs.TurnRefused as refused:
            return _refusal_response(refused, field="session_id")
        # The runner ends the turn as `stopped`: its `result` event follows on the streams.
        return Response({"session_id": session_id, "status": "stopping"}, status=status.HTTP_202_ACCEPTED)
