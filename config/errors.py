"""One error vocabulary for the whole API.

Every error body has the same shape, the one existing Claire clients already read:

    {"detail": {"message": "...", "code": "...", "request_id": "...", "fields": {...}}}

`fields` appears on validation errors only and maps each field to its messages.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    NON_FIELD_ERRORS,
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from config.http.request_ids import current_request_id

logger = logging.getLogger(__name__)


# Each field's messages; a nested or list field has an object of the same by sub-field or index
# (`{"tags": {"0": ["Ensure this field has no more than 50 characters."]}}`).
FIELD_MESSAGES_SCHEMA = {
    "type": "object",
    "additionalProperties": {
        "oneOf": [{"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "object"}]}}, {"type": "object"}]
    },
}


@extend_schema_field(FIELD_MESSAGES_SCHEMA)
class _FieldMessagesField(serializers.DictField):
    pass


class ErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField()
    code = serializers.CharField()
    request_id = serializers.CharField()
    fields = _FieldMessagesField(required=False)


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer, for the OpenAPI schema (config/openapi.py adds it to each)."""

    detail = ErrorDetailSerializer()


class CodedError(Exception):
    """A failure with a stable `code` for clients and a `message` for people (the base of the
    assistant's turn, model and orchestrator errors)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def error_body(
    message: str, code: str, *, fields: dict[str, Any] | None = None, request_id: str | None = None
) -> dict[str, Any]:
    detail: dict[str, Any] = {"message": message, "code": code, "request_id": request_id or current_request_id()}
    if fields is not None:
        detail["fields"] = fields
    return {"detail": detail}


def error_response(message: str, code: str, status_code: int, *, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(message, code), status=status_code, headers=headers)


def json_error(message: str, code: str, status_code: int, *, fields: dict[str, Any] | None = None) -> JsonResponse:
    """The same body for plain Django views (404/500 handlers, health)."""
    return JsonResponse(error_body(message, code, fields=fields), status=status_code)


def _first_code(codes: Any) -> str:
    while isinstance(codes, (list, dict)):
        if not codes:
            return "error"
        codes = next(iter(codes.values())) if isinstance(codes, dict) else codes[0]
    return str(codes)


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


def request_too_large() -> RequestTooLarge:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return RequestTooLarge(f"The request body is larger than the limit of {limit} bytes ({limit / 2**20:.1f} MiB).")


def too_many_parts(exc: TooManyFieldsSent | TooManyFilesSent) -> exceptions.ValidationError:
    """Django refuses a form or multipart body with more fields or files than its settings allow
    (a SuspiciousOperation: the API would answer 500, Django's own views a bare 400)."""
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        message = f"The body has more than {limit} files (DATA_UPLOAD_MAX_NUMBER_FILES); send fewer at once."
    else:
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        message = f"The body has more than {limit} fields (DATA_UPLOAD_MAX_NUMBER_FIELDS); send fewer at once."
    return exceptions.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [message]})


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        exc = too_many_parts(exc)
    elif isinstance(exc, RequestDataTooBig):
        # Django raises it lazily, from the first read of the body (DRF's request.data): in a
        # throttle, a permission or the view. Django answers it with a 400; the API with a 413.
        exc = request_too_large()
    elif isinstance(exc, DjangoValidationError):
        detail = as_serializer_error(exc)
        if NON_FIELD_ERRORS in detail:  # Django's "__all__": our clients read non_field_errors
            detail[api_settings.NON_FIELD_ERRORS_KEY] = detail.pop(NON_FIELD_ERRORS)
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        # Not an API error: log it with its traceback, answer without one.
        view = context.get("view")
        logger.error("Unhandled error in %s", type(view).__name__ if view else "an API view", exc_info=exc)
        return error_response(
            "Internal server error.", "server_error", status.HTTP_500_INTERNAL_SERVER_ERROR
        )

    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("Invalid input.", "invalid", fields=fields)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        if isinstance(detail, dict) and "message" in detail:  # already in our shape
            response.data = {"detail": {**detail, "request_id": current_request_id()}}
        else:
            message = detail.get("detail", detail) if isinstance(detail, dict) else detail
            if isinstance(message, list):
                message = " ".join(str(m) for m in message)
            response.data = error_body(str(message), _first_code(exc.get_codes()))
    return response
