"""The reference's code-assistance endpoints: a Server-Sent Events view of a turn, and its health.

`POST /api/v1/claude-code/code-assistance` runs a turn like the websocket does, and relays its events
in the reference's legacy shape (`code_assistance` / `system_status` / `tool_execution` / `error`).
Unlike a websocket turn, it is bound to its request: a client that disconnects stops the model.
The view is served on the ASGI path (config/asgi.py) so its async iterator streams unbuffered.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any, AsyncIterator

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view, authentication_classes, permission_classes, throttle_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from assistant import services
from assistant import runs
from assistant.llm import LLMError
from assistant.wire import jsontext
from config.errors import error_response

ICONS = {"code_assistance": "🤖", "system_status": "🧠", "tool_execution": "🔧", "error": "❌"}
SSE_KEEPALIVE_SECONDS = 15
SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class CodeAssistanceRequest(serializers.Serializer):
    prompt = serializers.CharField(min_length=1, max_length=10_000, trim_whitespace=False)
    session_id = serializers.CharField(required=False, allow_blank=False, max_length=100)
    context = serializers.CharField(required=False, allow_blank=True, max_length=5_000, trim_whitespace=False)

    def validate_session_id(self, value: str) -> str:
        if not SESSION_ID_PATTERN.match(value):
            raise serializers.ValidationError("Use letters, digits and . _ : - only.")
        return value

    def validate_prompt(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The prompt is empty.")
        return value


CodeAssistanceEvent = inline_serializer(
    "CodeAssistanceEvent",
    fields={
        "type": serializers.ChoiceField(choices=list(ICONS)),
        "content": serializers.CharField(),
        "icon": serializers.CharField(),
        "chunk_index": serializers.IntegerField(),
        "session_id": serializers.CharField(),
        "error_code": serializers.CharField(required=False),
        "done": serializers.BooleanField(required=False),
        "usage": serializers.DictField(required=False),
        "stop_reason": serializers.CharField(required=False),
    },
)


def legacy_event(frame: dict[str, Any]) -> dict[str, Any] | None:
    """A turn event in the reference's shape (without chunk_index and session_id)."""
    kind = frame["type"]
    if kind == "session":
        return {"type": "system_status", "content": f"Processing your request with {frame['agent']}…"}
    if kind == "text_delta":
        return {"type": "code_assistance", "content": frame["text"]}
    if kind == "thinking_delta":
        return {"type": "system_status", "content": frame["text"]}
    if kind == "tool_use":
        return {"type": "tool_execution", "content": f"Running {frame['name']}"}
    if kind == "tool_result":
        return {"type": "tool_execution", "content": frame["output"]}
    if kind == "approval_request":
        # The reference has no approvals: a status event saying so, with what a client needs to decide
        # over REST (POST /api/v1/sessions/{session_id}/approvals/{approval_id}).
        approval = {key: frame[key] for key in ("approval_id", "tool_use_id", "name", "input", "expires_at")}
        return {"type": "system_status", "approval": {**approval, "session_id": frame["session_id"]},
                "content": f"{frame['name']} needs your approval before it runs: allow or deny it with POST "
                           f"/api/v1/sessions/{frame['session_id']}/approvals/{frame['approval_id']}."}  # fmt: skip
    if kind == "result" and frame["status"] == "awaiting_approval":
        return {"type": "system_status", "content": "Waiting for your approval; the answer goes on once you decide.",
                "done": True, "usage": frame.get("usage", {}), "stop_reason": frame.get("stop_reason")}  # fmt: skip
    if kind == "result":
        done = "Stopped." if frame["status"] == "stopped" else "Completed."
        return {"type": "system_status", "content": done, "done": True, "usage": frame.get("usage", {}),
                "stop_reason": frame.get("stop_reason")}  # fmt: skip
    if kind == "error":
        return {"type": "error", "content": frame["message"], "error_code": frame["code"], "done": True}
    return None


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {jsontext.dumps(data)}\n\n".encode()  # line separators escaped: one event, one line


class _Body:
    """The response's events. Django closes a response when it ends, read or not (in its thread):
    closing stops the turn, so a client gone before the first byte stops the model too."""

    def __init__(self, runner: runs.TurnRunner, queue: asyncio.Queue, client_session_id: str) -> None:
        self.runner = runner
        self.events = _relay(runner, queue, client_session_id)

    def __aiter__(self):
        return self.events.__aiter__()

    def close(self) -> None:
        if not self.runner.done.is_set():
            self.runner.request_stop_threadsafe()


async def _relay(runner: runs.TurnRunner, queue: asyncio.Queue, client_session_id: str) -> AsyncIterator[bytes]:
    chunk_index = 0
    try:
        while True:
            try:
                frame = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_SECONDS)
            except TimeoutError:
                yield b": keep-alive\n\n"  # keeps proxies from timing out a quiet stream
                continue
            event = legacy_event(frame)
            if event is not None:
                event.update(icon=ICONS[event["type"]], chunk_index=chunk_index, session_id=client_session_id)
                chunk_index += 1
                yield _sse(event)
            if frame["type"] in {"result", "error"}:
                return
    finally:
        if not runner.done.is_set():
            runner.request_stop()  # the client left: stop the model, keep what was said as `stopped`


class CodeAssistanceApi(APIView):
    """Ask Claude for code assistance; the answer streams as Server-Sent Events."""

    def perform_content_negotiation(self, request, force=False):
        # Clients ask for `text/event-stream`; errors before the stream starts are JSON all the same.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        tags=["assistant"],
        request=CodeAssistanceRequest,
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                CodeAssistanceEvent, description="A stream of `data: <CodeAssistanceEvent JSON>` lines; header X-Session-ID."
            ),
            400: OpenApiResponse(description="Invalid input, with per-field messages."),
            409: OpenApiResponse(description="A turn is already running in this session (`turn_in_progress`), or "
                                 "tool calls of its last answer wait for approval (`approval_pending`)."),  # fmt: skip
            429: OpenApiResponse(
                description="Too many answers of this user running at once (`too_many_turns`), or a monthly budget "
                "is used up (`budget_exceeded`)."
            ),
            503: OpenApiResponse(description="No model or code-assistance agent is configured."),
        },
    )
    def post(self, request: Request):
        serializer = CodeAssistanceRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        client_session_id = data.get("session_id") or f"claude-session-{uuid.uuid4().hex[:12]}"
        try:
            plan = services.code_assistance_turn_begin(
                user=request.user, client_session_id=client_session_id, prompt=data["prompt"], context=data.get("context", "")
            )
        except LLMError as exc:
            return error_response(exc.message, exc.code, status.HTTP_503_SERVICE_UNAVAILABLE)
        except runs.TurnRefused as refused:
            code = {
                "not_configured": status.HTTP_503_SERVICE_UNAVAILABLE,
                "turn_in_progress": status.HTTP_409_CONFLICT,
                "approval_pending": status.HTTP_409_CONFLICT,
                "too_many_turns": status.HTTP_429_TOO_MANY_REQUESTS,
                "budget_exceeded": status.HTTP_429_TOO_MANY_REQUESTS,
                "agent_unavailable": status.HTTP_503_SERVICE_UNAVAILABLE,
                "connection_required": status.HTTP_409_CONFLICT,
            }.get(refused.code, status.HTTP_400_BAD_REQUEST)
            response = error_response(refused.message, refused.code, code)
            if refused.details:  # connection_required: the integration and its connect URL
                response.data["detail"].update(refused.details)
            return response
        plan.transport = "sse"
        runner, queue = runs.turn_start_from_sync(plan)
        response = StreamingHttpResponse(
            _Body(runner, queue, client_session_id), content_type="text/event-stream; charset=utf-8"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: don't buffer the stream
        response["X-Session-ID"] = client_session_id
        return response


@extend_schema(
    tags=["assistant"],
    auth=[],
    responses={
        200: inline_serializer(
            "CodeAssistanceHealth",
            fields={
                "status": serializers.ChoiceField(choices=["ok", "not_configured"]),
                "configured": serializers.BooleanField(),
                "agent": serializers.CharField(),
                "model": serializers.CharField(allow_blank=True),
            },
        )
    },
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def code_assistance_health(request: Request) -> Response:
    """Whether the model endpoint behind code assistance is configured."""
    agent = services.code_assistance_agent()
    model = runs.model_settings_for(agent) if agent is not None else None
    configured = bool(model and model.api_key)
    return Response(
        {
            "status": "ok" if configured else "not_configured",
            "configured": configured,
            "agent": settings.CODE_ASSISTANCE_AGENT,
            "model": model.model if model else "",
        }
    )
