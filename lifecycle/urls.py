from django.urls import path

from lifecycle import api

urlpatterns = [
    path("me/export", api.ExportsApi.as_view(), name="lifecycle-exports"),
    path("me/export/<str:export_id>", api.ExportApi.as_view(), name="lifecycle-export"),
]
