"""The OpenAPI schema documents every status an operation can answer, not only its success.

Error statuses follow from what the view is made of, so no endpoint has to repeat them:

- a request body: 400 (invalid input, `fields` names each bad field), 413 (larger than
  DATA_UPLOAD_MAX_MEMORY_SIZE) and 415 (not JSON);
- query parameters: 400 (a value the operation can't take, or a NUL character: `fields` names it);
- authentication classes: 401 (no, invalid or expired credentials; 403 if the first class sends no
  `WWW-Authenticate`), plus what a class declares in `openapi_error_statuses` (the provider's keys
  unreachable: 503);
- session authentication on an unsafe method: 403 (CSRF); a permission class other than
  AllowAny/IsAuthenticated: 403;
- a path parameter: 404; a page-number or cursor paginated list: 404 (no such page);
- throttle classes: 429, with `Retry-After`.

`extend_schema(responses=…)` on a view documents the rest (409, 502…) and wins over these
descriptions. Every 4xx/5xx documented without a body gets the one error body of config/errors.py.
Left out, as for any HTTP API: 405 (a method the path doesn't have is no operation) and 406 (an
`Accept` header that excludes JSON).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from rest_framework.authentication import SessionAuthentication
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.permissions import AllowAny, IsAuthenticated

from config.errors import ErrorSerializer

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
REFUSE_NOBODY = (AllowAny, IsAuthenticated)  # never refuse a signed-in user

INVALID_INPUT = "Invalid input: `detail.fields` has each field's messages."
TOO_LARGE = "The body is larger than the server's limit (DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MiB by default)."
NOT_JSON = "The body is not JSON (`Content-Type: application/json`)."
NOT_SIGNED_IN = "Not signed in: no, invalid or expired credentials."
CSRF_FAILED = "Signed in by session cookie without a valid CSRF token (`X-CSRFToken`)."
NOT_PERMITTED = "Signed in, but not permitted."
NOT_FOUND = "Not found, or not one you can see."
NO_SUCH_PAGE = "No such page (`{param}` out of range or malformed)."
THROTTLED = "Too many requests: try again after `Retry-After` seconds."


class AutoSchema(openapi.AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        for code, description in self.error_statuses(operation).items():
            responses.setdefault(code, {"description": description})
        error_body = {"application/json": {"schema": self.resolve_serializer(ErrorSerializer, "response").ref}}
        for code, response in responses.items():
            if code[0] in "45" and "content" not in response:
                response["content"] = error_body
        if "429" in responses:
            responses["429"].setdefault("headers", {})["Retry-After"] = {
                "schema": {"type": "integer"},
                "description": "Seconds to wait before trying again.",
            }
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def error_statuses(self, operation: dict[str, Any]) -> dict[str, str]:
        """The error statuses this operation can answer, by what its view is made of."""
        view = self.view
        statuses: dict[str, str] = {}
        parameters = operation.get("parameters", [])
        if "requestBody" in operation or any(parameter["in"] == "query" for parameter in parameters):
            statuses["400"] = INVALID_INPUT
        if "requestBody" in operation:
            statuses["413"] = TOO_LARGE
            statuses["415"] = NOT_JSON

        authenticators = view.get_authenticators()
        if authenticators:
            # DRF answers 403 instead of 401 when the first class has no WWW-Authenticate challenge.
            unauthenticated = "401" if authenticators[0].authenticate_header(view.request) else "403"
            statuses[unauthenticated] = NOT_SIGNED_IN
            for authenticator in authenticators:
                statuses.update(getattr(authenticator, "openapi_error_statuses", {}))
            if self.method in UNSAFE_METHODS and any(isinstance(a, SessionAuthentication) for a in authenticators):
                statuses.setdefault("403", CSRF_FAILED)
        if any(not isinstance(permission, REFUSE_NOBODY) for permission in view.get_permissions()):
            statuses.setdefault("403", NOT_PERMITTED)

        not_found = []
        if any(parameter["in"] == "path" for parameter in parameters):
            not_found.append(NOT_FOUND)
        page_param = self._invalid_page_parameter()
        if page_param and any(p["in"] == "query" and p["name"] == page_param for p in parameters):
            not_found.append(NO_SUCH_PAGE.format(param=page_param))
        if not_found:
            statuses["404"] = " Or: ".join(not_found)

        if view.get_throttles():
            statuses["429"] = THROTTLED
        return statuses

    def _invalid_page_parameter(self) -> str | None:
        """The query parameter whose bad value the view's paginator answers with 404."""
        pagination_class = getattr(self.view, "pagination_class", None)
        if pagination_class is None:
            return None
        if issubclass(pagination_class, PageNumberPagination):
            return pagination_class.page_query_param
        if issubclass(pagination_class, CursorPagination):
            return pagination_class.cursor_query_param
        return None
