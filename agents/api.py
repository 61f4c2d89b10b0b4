"""REST API for the agents app: thin viewsets over selectors (reads) and services (writes).

Reads see the user's own objects plus organization-wide ones; writes (update, delete) see only the
user's own, so anything else answers 404, never 403 — an id tells nothing about other users' objects.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from django.db.models import ProtectedError, RestrictedError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from agents import selectors, services, workspaces
from agents.models import AIAgent, Integration, LLMProviderConfig, PromptTemplate, UserAgentSession
from agents.serializers import (
    AIAgentSerializer,
    IntegrationSerializer,
    LLMProviderConfigSerializer,
    MessageSerializer,
    PromptRenderResultSerializer,
    PromptRenderSerializer,
    PromptTemplateSerializer,
    PromptTemplateVersionSerializer,
    UserAgentSessionSerializer,
    WorkspaceFileSerializer,
)
from config import untrusted
from config.errors import error_response


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


def _query(name: str, description: str, type_=OpenApiTypes.STR) -> OpenApiParameter:
    return OpenApiParameter(name, type_, OpenApiParameter.QUERY, required=False, description=description)


def _int_param(request: Request, name: str) -> int | None:
    """A non-negative integer query parameter (a 64-bit one: both databases' range), or None if absent.
    Anything else is a 400 naming it."""
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        return untrusted.db_int(value, name=name)
    except untrusted.UnsafeInput as unsafe:
        raise ValidationError(unsafe.fields()) from None


SEARCH = _query("search", "Case-insensitive substring of the name, slug or description.")
TAG = _query("tag", "Only objects carrying this tag.")
IS_ACTIVE = _query("is_active", "true / false.", OpenApiTypes.BOOL)
NOT_FOUND = OpenApiResponse(description="Not found, or not yours to change.")
CONFLICT = OpenApiResponse(description="Still in use by other objects.")


class _OwnedViewSet(viewsets.ModelViewSet):
    """Reads through `visible`, writes through `owned`; list filters from the query string."""

    pagination_class = Pagination
    filter_names: tuple[str, ...] = ()
    READ_ACTIONS = frozenset({"list", "retrieve"})

    def visible(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def owned(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def listed(self, filters):  # pragma: no cover - overridden
        raise NotImplementedError

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular inspecting the view
            return self.queryset
        if self.action == "list":
            return self.listed(selectors.filters_from(self.request.query_params, self.filter_names))
        if self.action in self.READ_ACTIONS:
            return self.visible()
        return self.owned()

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        instance = self.get_object()
        try:
            self.perform_destroy(instance)
        except (ProtectedError, RestrictedError) as exc:
            blocking = getattr(exc, "protected_objects", None) or getattr(exc, "restricted_objects", ())
            used_by = sorted({f"{obj._meta.verbose_name} {obj}" for obj in blocking})[:10]
            return error_response(
                f"Still in use by: {', '.join(used_by)}. Remove those references first (or deactivate it).",
                "protected",
                status.HTTP_409_CONFLICT,
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _docs(tag: str, list_parameters: list[OpenApiParameter], noun: str, *, referenced: bool = False):
    """`referenced`: other objects may hold it (RESTRICT), so a delete can answer 409."""

    def decorate(viewset: type[_OwnedViewSet]) -> type[_OwnedViewSet]:
        # A responses dict replaces the default one: it names the 200 too.
        found = {200: viewset.serializer_class, 404: NOT_FOUND}
        return extend_schema_view(
            list=extend_schema(tags=[tag], parameters=list_parameters, summary=f"List {noun} you can see"),
            create=extend_schema(tags=[tag], summary=f"Create one of your {noun}"),
            retrieve=extend_schema(tags=[tag], responses=found),
            update=extend_schema(tags=[tag], responses=found),
            partial_update=extend_schema(tags=[tag], responses=found),
            destroy=extend_schema(
                tags=[tag], responses={204: None, 404: NOT_FOUND, **({409: CONFLICT} if referenced else {})}
            ),
        )(viewset)

    return decorate


@_docs("llm-configs", [SEARCH, _query("provider", "Only this provider.")], "LLM configs")
class LLMProviderConfigViewSet(_OwnedViewSet):
    """LLM provider configs. The API key is write-only; answers show `api_key_masked`."""

    queryset = LLMProviderConfig.objects.none()  # for the schema; get_queryset decides
    serializer_class = LLMProviderConfigSerializer
    filter_names = ("search", "provider")

    def visible(self):
        return selectors.llm_config_visible(user=self.request.user)

    def owned(self):
        return selectors.llm_config_owned(user=self.request.user)

    def listed(self, filters):
        return selectors.llm_config_list(user=self.request.user, filters=filters)

    def perform_create(self, serializer) -> None:
        serializer.instance = services.llm_config_create(owner=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = services.llm_config_update(config=serializer.instance, **serializer.validated_data)


@_docs("integrations", [SEARCH, _query("provider", "Only this provider."), IS_ACTIVE], "integrations")
class IntegrationViewSet(_OwnedViewSet):
    """Integrations (GitHub, Atlassian, …) and their MCP servers. Credentials are write-only."""

    queryset = Integration.objects.none()  # for the schema; get_queryset decides
    serializer_class = IntegrationSerializer
    filter_names = ("search", "provider", "is_active")

    def visible(self):
        return selectors.integration_visible(user=self.request.user)

    def owned(self):
        return selectors.integration_owned(user=self.request.user)

    def listed(self, filters):
        return selectors.integration_list(user=self.request.user, filters=filters)

    def perform_create(self, serializer) -> None:
        serializer.instance = services.integration_create(owner=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = services.integration_update(
            integration=serializer.instance, **serializer.validated_data
        )


@_docs("prompts", [SEARCH, TAG, _query("slug", "Only the prompt(s) with this slug.")], "prompts", referenced=True)
class PromptTemplateViewSet(_OwnedViewSet):
    """The prompt library. Changing a body keeps the old text as a version."""

    queryset = PromptTemplate.objects.none()  # for the schema; get_queryset decides
    serializer_class = PromptTemplateSerializer
    filter_names = ("search", "tag", "slug")
    READ_ACTIONS = frozenset({"list", "retrieve", "render", "versions"})

    def visible(self):
        return selectors.prompt_visible(user=self.request.user)

    def owned(self):
        return selectors.prompt_owned(user=self.request.user)

    def listed(self, filters):
        return selectors.prompt_list(user=self.request.user, filters=filters)

    def perform_create(self, serializer) -> None:
        serializer.instance = services.prompt_create(
            owner=self.request.user, created_by=self.request.user, **serializer.validated_data
        )

    def perform_destroy(self, instance) -> None:
        services.prompt_delete(prompt=instance)

    def perform_update(self, serializer) -> None:
        serializer.instance = services.prompt_update(
            prompt=serializer.instance, user=self.request.user, **serializer.validated_data
        )

    @extend_schema(
        tags=["prompts"],
        request=PromptRenderSerializer,
        responses={200: PromptRenderResultSerializer, 400: OpenApiResponse(description="Missing variables, named.")},
        summary="Render a prompt with variables",
    )
    @action(detail=True, methods=["post"])
    def render(self, request: Request, pk: str | None = None) -> Response:
        prompt = self.get_object()
        serializer = PromptRenderSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rendered = services.prompt_render(template_body=prompt.body, variables=serializer.validated_data["variables"])
        return Response({"rendered": rendered, "version": prompt.version})

    @extend_schema(
        tags=["prompts"],
        responses={200: PromptTemplateVersionSerializer(many=True)},
        summary="A prompt's version history, newest first (another user's shared prompt: only the versions "
        "written while it was shared)",
    )
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str | None = None) -> Response:
        prompt = self.get_object()
        page = self.paginate_queryset(selectors.prompt_version_list(prompt=prompt, user=request.user))
        return self.get_paginated_response(PromptTemplateVersionSerializer(page, many=True).data)


@_docs(
    "agents",
    [
        SEARCH,
        TAG,
        _query("slug", "Only the agent with this slug."),
        _query("category", "Only agents of this category."),
        IS_ACTIVE,
    ],
    "agents",
    referenced=True,
)
class AIAgentViewSet(_OwnedViewSet):
    """AI agents: system prompt, LLM config, tools, MCP integrations, custom-properties schema."""

    queryset = AIAgent.objects.none()  # for the schema; get_queryset decides
    serializer_class = AIAgentSerializer
    filter_names = ("search", "tag", "slug", "category", "is_active")

    def visible(self):
        return selectors.agent_visible(user=self.request.user)

    def owned(self):
        return selectors.agent_owned(user=self.request.user)

    def listed(self, filters):
        return selectors.agent_list(user=self.request.user, filters=filters)

    def perform_create(self, serializer) -> None:
        serializer.instance = services.agent_create(owner=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = services.agent_update(agent=serializer.instance, **serializer.validated_data)


@_docs(
    "sessions",
    [
        _query("search", "Case-insensitive substring of the title or of the messages' text (at most 100 characters)."),
        _query("agent", "Only sessions with this agent (id or slug)."),
        IS_ACTIVE,
    ],
    "sessions",
)
class UserAgentSessionViewSet(_OwnedViewSet):
    """Your sessions with agents (strictly yours) and their messages."""

    queryset = UserAgentSession.objects.none()  # for the schema; get_queryset decides
    serializer_class = UserAgentSessionSerializer
    filter_names = ("search", "agent", "is_active")
    READ_ACTIONS = frozenset({"list", "retrieve", "messages"})

    def visible(self):
        return selectors.session_owned(user=self.request.user)

    owned = visible

    def listed(self, filters):
        if len(filters.get("search", "")) > selectors.SESSION_SEARCH_MAX_CHARS:
            raise ValidationError({"search": [f"At most {selectors.SESSION_SEARCH_MAX_CHARS} characters."]})
        if untrusted.is_ascii_digits(filters.get("agent", "")):  # an id; else a slug
            filters = {**filters, "agent": _int_param(self.request, "agent")}
        return selectors.session_list(user=self.request.user, filters=filters)

    def perform_create(self, serializer) -> None:
        data = dict(serializer.validated_data)
        is_active = data.pop("is_active", True)  # a serializer field that session_create doesn't take
        session = services.session_create(owner=self.request.user, **data)
        if not is_active:
            session = services.session_update(session=session, is_active=False)
        serializer.instance = session

    def perform_update(self, serializer) -> None:
        data = dict(serializer.validated_data)
        data.pop("agent", None)  # unchanged (validated by the serializer)
        serializer.instance = services.session_update(session=serializer.instance, **data)

    @extend_schema(
        tags=["sessions"],
        parameters=[_query("after_seq", "Only messages with a larger sequence number.", OpenApiTypes.INT)],
        responses={
            200: MessageSerializer(many=True),
            400: OpenApiResponse(description="`after_seq` is not a non-negative 64-bit integer."),
            404: NOT_FOUND,
        },
        summary="A session's messages, in order",
    )
    @action(detail=True, methods=["get"], pagination_class=Pagination)
    def messages(self, request: Request, pk: str | None = None) -> Response:
        session = self.get_object()
        queryset = selectors.message_list(session=session, after_seq=_int_param(request, "after_seq"))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(MessageSerializer(page, many=True).data)


    # --- files of the session's workspace ------------------------------------------------------

    def initial(self, request: Request, *args, **kwargs) -> None:
        if self.action == "files" and request.method == "POST":
            # Before authentication: the CSRF check of cookie sessions reads the body, and must read
            # it through the guard too.
            self._upload_guard = _LimitedUploadHandler(request._request, limit=settings.WORKSPACE_MAX_FILE_BYTES)
            request._request.upload_handlers = [self._upload_guard]
        super().initial(request, *args, **kwargs)

    @extend_schema(
        tags=["sessions"],
        methods=["GET"],
        responses={200: WorkspaceFileSerializer(many=True), 404: NOT_FOUND},
        summary="The files of a session's workspace",
        description="Files at the top level of the session's workspace: uploads, and files the agent's file "
        "tools wrote there. Only the session's owner sees them (anyone else: 404).",
    )
    @extend_schema(
        tags=["sessions"],
        methods=["POST"],
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
        responses={
            201: WorkspaceFileSerializer,
            400: OpenApiResponse(
                description="No `file` part, an unusable name, too many files, or the session's agent has no "
                "workspace tools (code `no_workspace`)."
            ),
            404: NOT_FOUND,
            413: OpenApiResponse(
                description="Larger than WORKSPACE_MAX_FILE_BYTES, or over the session's WORKSPACE_QUOTA_BYTES "
                "(code `too_large`)."
            ),
        },
        summary="Upload a file into a session's workspace",
        description="Multipart, one part named `file`. The agent's file tools (and its sandboxed shell, at "
        "/workspace) see it under its stored name: the last part of the name sent, without control characters "
        "or leading dots, at most 120 characters, made unique with ` (1)`, ` (2)`… Only for sessions of agents "
        "with workspace tools.",
    )
    @action(detail=True, methods=["get", "post"], parser_classes=[MultiPartParser], pagination_class=None)
    def files(self, request: Request, pk: str | None = None) -> Response:
        session = self.get_object()
        if request.method == "GET":
            return Response(WorkspaceFileSerializer(workspaces.file_list(session_id=session.pk), many=True).data)
        if session.agent is None or not _has_workspace(session.agent):
            return error_response(
                "This session's agent has no workspace tools: it could not see an uploaded file.",
                "no_workspace",
                status.HTTP_400_BAD_REQUEST,
            )
        limit = settings.WORKSPACE_MAX_FILE_BYTES
        too_large = error_response(
            f"The file is larger than the limit of {limit} bytes ({limit / 2**20:.1f} MiB).",
            "too_large",
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
        if untrusted.is_ascii_digits(request.META.get("CONTENT_LENGTH") or "") and int(
            request.META["CONTENT_LENGTH"]
        ) > workspaces.upload_body_limit():
            return too_large  # refused before reading the body (the server's edge does too: agents/apps.py)
        upload = request.FILES.get("file")
        if self._upload_guard.too_large:
            return too_large
        if upload is None:
            raise ValidationError({"file": ["Send the file as a multipart part named `file`."]})
        try:
            stored = workspaces.file_save(session_id=session.pk, name=upload.name, stream=upload, size=upload.size)
        except workspaces.FileTooLarge as exc:
            return error_response(str(exc), "too_large", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        finally:
            upload.close()
        return Response(WorkspaceFileSerializer(stored).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["sessions"],
        responses={204: None, 404: OpenApiResponse(description="No such session of yours, or no such file.")},
        summary="Delete a file of a session's workspace",
    )
    @action(detail=True, methods=["delete"], url_path=r"files/(?P<name>[^/]+)", url_name="file")
    def file(self, request: Request, pk: str | None = None, name: str = "") -> Response:
        session = self.get_object()
        if not workspaces.file_delete(session_id=session.pk, name=name):
            return error_response("No such file.", "not_found", status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _has_workspace(agent: AIAgent) -> bool:
    return selectors.agent_workspace_tools(agent=agent) != AIAgent.WorkspaceTools.NONE


class _LimitedUploadHandler(TemporaryFileUploadHandler):
    """Stops reading an upload once it passes `limit` bytes (a body sent without a length, or one
    that lied about it), so it never fills the disk."""

    def __init__(self, request, *, limit: int):
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.too_large = False

    def receive_data_chunk(self, raw_data: bytes, start: int):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.too_large = True
            raise StopUpload(connection_reset=True)
        return super().receive_data_chunk(raw_data, start)
