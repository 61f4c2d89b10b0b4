from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from assistant.views import chat
from config import views

urlpatterns = [
    path("", views.health, name="root"),
    path("health", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("chat/", chat, name="chat"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/auth/", include("accounts.urls")),
    path("api/v1/", include("agents.urls")),
    path("api/v1/", include("assistant.urls")),
    # The organization server answers at the site root, where existing Claire clients call it.
    path("", include("orgproxy.urls")),
]

handler404 = "config.views.not_found"
handler500 = "config.views.server_error"
