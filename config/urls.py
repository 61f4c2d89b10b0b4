from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from assistant.surfaces.openai import api as openai_api
from assistant.surfaces.openai import embeddings as openai_embeddings
from assistant.surfaces.openai import responses as openai_responses
from assistant.surfaces.chat_page import chat
from config import views
from connections import api as connections_api
from lifecycle import api as lifecycle_api
from observability import views as observability_views

urlpatterns = [
    path("", views.health, name="root"),
    path("health", views.health, name="health"),
    path("metrics", observability_views.metrics, name="metrics"),
    # Where browsers look for a page's icon when it names none (the admin's pages, JSON answers).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True), name="favicon"),
    # The organization server answers at the site root, where existing Claire clients call it. Early
    # in the list: its paths are matched first, and its clients are the busiest (issue 18).
    path("", include("orgproxy.urls")),
    path("admin/", admin.site.urls),
    path("accounts/login/", LoginView.as_view(extra_context={"oidc_enabled": settings.OIDC_ENABLED}), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("chat/", chat, name="chat"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Its script from its own URL (`?script`), its styles from static files: no inline code (the CSP).
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api_docs/swagger_ui.html"),
        name="swagger-ui",
    ),
    # GET as accounts answers it; DELETE erases the account (lifecycle/, issue 32).
    path("api/v1/auth/me", lifecycle_api.MeApi.as_view(), name="auth-me-erase"),
    path("api/v1/auth/", include("accounts.urls")),
    # Browser login through the OpenID provider (404 unless configured, see accounts/oidc.py).
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("api/v1/", include("agents.urls")),
    path("api/v1/", include("connections.urls")),
    path("connections/oauth/callback", connections_api.oauth_callback, name="connections-oauth-callback"),
    path("api/v1/", include("assistant.urls")),
    path("api/v1/", include("usage.urls")),
    path("api/v1/", include("lifecycle.urls")),
    # The OpenAI-compatible API, where OpenAI clients expect it (base URL `<site>/v1`).
    path("v1/models", openai_api.models_list, name="openai-models"),
    path("v1/models/<str:model>", openai_api.model_detail, name="openai-model"),
    path("v1/chat/completions", openai_api.chat_completions, name="openai-chat-completions"),
    path("v1/responses", openai_responses.responses_create, name="openai-responses"),
    path("v1/responses/<str:response_id>", openai_responses.response_detail, name="openai-response"),
    path("v1/embeddings", openai_embeddings.embeddings, name="openai-embeddings"),
    path("v1/completions", openai_responses.legacy_completions, name="openai-legacy-completions"),
    # Every other path under it answers OpenAI's 404 in OpenAI's shape (what its clients can read).
    re_path(r"^v1(?:/.*)?$", openai_api.unknown_path, name="openai-unknown"),
]

handler400 = "config.views.bad_request"
handler404 = "config.views.not_found"
handler500 = "config.views.server_error"
