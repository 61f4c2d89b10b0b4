from django.urls import path

from connections import api

urlpatterns = [
    path("connections", api.ConnectionsApi.as_view(), name="connection-list"),
    path("connections/<str:connection_id>", api.ConnectionApi.as_view(), name="connection-detail"),
    path("integrations/<str:integration_id>/connect", api.ConnectApi.as_view(), name="integration-connect"),
]
