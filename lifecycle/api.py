"""The lifecycle endpoints: a user's own export (start, state, download) and erasure of their account
(`DELETE /api/v1/auth/me`, routed here by config/urls.py; `GET` stays accounts')."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import MeApi as AccountsMeApi
from accounts.throttles import PasswordChangeIpThrottle, PasswordChangeUserThrottle
from config.errors import error_response
from lifecycle.erase import ErasureRefused, user_erase
from lifecycle.export import ExportRefused, export_file, export_for_user, export_start
from lifecycle.models import Export

WRONG_PASSWORD = "The current password is not correct."
WRONG_EMAIL = "Type your account's email to confirm."


class ExportSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = ["id", "state", "size", "error", "created_at", "finished_at", "expires_at", "url"]

    def get_url(self, export: Export) -> str:
        return reverse("lifecycle-export", args=[export.pk])


@extend_schema(tags=["me"])
class ExportsApi(APIView):
    @extend_schema(request=None, responses={
        202: ExportSerializer,
        409: OpenApiResponse(description="An export of this account is being built."),
        429: OpenApiResponse(description="EXPORTS_PER_DAY reached."),
    })  # fmt: skip
    def post(self, request: Request) -> Response:
        """Start an export of everything the signed-in user has here; poll its URL until it is ready."""
        try:
            export = export_start(user=request.user)
        except ExportRefused as refused:
            code = "export_running" if refused.status == 409 else "export_limit"
            answer = error_response(str(refused), code, refused.status)
            if refused.export is not None:
                answer.data["detail"]["export"] = ExportSerializer(refused.export).data
            return answer
        return Response(ExportSerializer(export).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["me"])
class ExportApi(APIView):
    @extend_schema(responses={200: OpenApiResponse(response=ExportSerializer,
                                                   description="The export's state; once ready, the zip itself "
                                                   "(application/zip)."),
                              404: OpenApiResponse(description="No such export of yours (or it expired).")})  # fmt: skip
    def get(self, request: Request, export_id: str):
        """The export's state; once it is ready, the zip itself. Only its owner sees it (others: 404)."""
        export = export_for_user(user=request.user, export_id=export_id)
        if export is None:
            return error_response("No such export (exports are deleted when they expire).", "not_found", 404)
        if export.state != Export.State.READY:
            return Response(ExportSerializer(export).data)
        try:
            handle = export_file(export).open("rb")
        except FileNotFoundError:
            return error_response("The export's file is gone; start a new export.", "not_found", 404)
        return FileResponse(handle, as_attachment=True, filename=f"conduit-export-{export.created_at:%Y%m%d}.zip",
                            content_type="application/zip")  # fmt: skip


class EraseSerializer(serializers.Serializer):
    current_password = serializers.CharField(max_length=4096, required=False, trim_whitespace=False)
    email = serializers.CharField(max_length=254, required=False)


class MeApi(AccountsMeApi):
    throttle_classes = [PasswordChangeIpThrottle, PasswordChangeUserThrottle]

    def get_throttles(self):
        # Only the erasure takes a password, and guesses at it are throttled like logins.
        return super().get_throttles() if self.request.method == "DELETE" else []

    @extend_schema(request=EraseSerializer, responses={
        204: None,
        400: OpenApiResponse(description="Wrong or missing confirmation."),
        409: OpenApiResponse(description="The account is under legal hold, or others' sessions use its agents."),
        502: OpenApiResponse(description="Claire could not delete the user's sessions; nothing was erased."),
    })  # fmt: skip
    def delete(self, request: Request) -> Response:
        """Erase the signed-in account and everything of it (docs/data-lifecycle.md). Confirmed with the
        current password; accounts that sign in only through a provider (no password) type their email."""
        serializer = EraseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = request.user
        if user.has_usable_password():
            if not user.check_password(serializer.validated_data.get("current_password", "")):
                raise ValidationError({"current_password": [WRONG_PASSWORD]})
        elif serializer.validated_data.get("email", "").strip().lower() != user.email:
            raise ValidationError({"email": [WRONG_EMAIL]})
        try:
            user_erase(user=user, source="api")
        except ErasureRefused as refused:
            return error_response(str(refused), refused.code, refused.status)
        return Response(status=status.HTTP_204_NO_CONTENT)
