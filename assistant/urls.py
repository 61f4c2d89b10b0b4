from django.urls import path

from assistant import api

urlpatterns = [
    path("claude-code/code-assistance", api.CodeAssistanceApi.as_view(), name="code-assistance"),
    path("claude-code/health", api.code_assistance_health, name="code-assistance-health"),
]
