from django.urls import path

from usage import api

urlpatterns = [path("usage", api.UsageApi.as_view(), name="usage")]
