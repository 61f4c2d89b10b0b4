"""Approvals over REST: the user's tool calls waiting for a decision, and the decision.

    GET  /api/v1/approvals?status=pending                      the user's (paginated, oldest first)
    POST /api/v1/sessions/{id}/approvals/{approval_id}         {"decision": "allow"|"deny", "reason"?} → 202

The decision is the websocket's `approve` (assistant/runs/approvals.py): the last one of a paused answer
resumes its turn in this process, whose events follow on `GET /api/v1/sessions/{id}/events` and every
socket watching the session. Served on the ASGI path (config/asgi.py) so the resumed turn runs on this
process's event loop.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from assistant import runs
from assistant.models import Approval
from assistant.surfaces.run_api import _refusal_response, _session_id  # the run API's own helpers


class ApprovalSerializer(serializers.ModelSerializer):
    approval_id = serializers.UUIDField(source="id", read_only=True)
    session_id = serializers.IntegerField(read_only=True)
    agent = serializers.CharField(source="session.agent.slug", read_only=True)
    decided_by = serializers.EmailField(source="decided_by.email", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Approval
        fields = ["approval_id", "session_id", "agent", "tool_use_id", "name", "input", "status", "reason",
                  "decided_by", "decided_at", "expires_at", "created_at"]  # fmt: skip
        read_only_fields = fields


class ApprovalList(generics.ListAPIView):
    """The user's tool calls by decision state (default: pending ones)."""

    serializer_class = ApprovalSerializer

    @extend_schema(
        tags=["assistant"],
        operation_id="approvals_list",
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False,
                             enum=[choice for choice, _ in Approval.Status.choices],
                             description="Default: pending."),  # fmt: skip
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        wanted = self.request.query_params.get("status") or Approval.Status.PENDING
        if wanted not in Approval.Status.values:
            raise ValidationError({"status": [f"Must be one of: {', '.join(Approval.Status.values)}."]})
        return (
            Approval.objects.filter(session__owner=self.request.user, status=wanted)
            .select_related("session__agent", "decided_by")
            .order_by("created_at", "tool_use_id")
        )


class DecisionRequest(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["allow", "deny"])
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class ApprovalDecisionApi(APIView):
    """Allow or deny one of the session's tool calls waiting for a decision (only its owner; once)."""

    @extend_schema(
        tags=["assistant"],
        operation_id="approvals_decide",
        request=DecisionRequest,
        responses={
            202: ApprovalSerializer,
            400: OpenApiResponse(description="`decision` or `reason` is not valid (field errors)."),
            404: OpenApiResponse(description="No such session of yours, or no such approval in it."),
            409: OpenApiResponse(description="Already decided or expired (`already_decided`)."),
            429: OpenApiResponse(description="Resuming the answer would pass your running-answers limit "
                                 "(`too_many_turns`): nothing was decided; try again."),  # fmt: skip
        },
    )
    def post(self, request: Request, pk: str, approval_id: str):
        body = DecisionRequest(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            decided = async_to_sync(runs.approval_decide_async)(
                user=request.user, session_id=_session_id(pk), approval_id=approval_id,
                decision=body.validated_data["decision"], reason=body.validated_data["reason"],
            )  # fmt: skip
        except runs.TurnRefused as refused:
            return _refusal_response(refused, field=refused.field or "decision")
        data = ApprovalSerializer(decided.approval).data
        return Response({**data, "resumed": decided.plan is not None}, status=status.HTTP_202_ACCEPTED)
