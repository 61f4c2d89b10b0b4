from django.urls import path

from assistant.surfaces import code_assistance as api
from assistant.surfaces import run_api
from assistant.surfaces.run_api import approvals as approvals_api

urlpatterns = [
    path("claude-code/code-assistance", api.CodeAssistanceApi.as_view(), name="code-assistance"),
    path("claude-code/health", api.code_assistance_health, name="code-assistance-health"),
    path("agents/<str:slug>/run", run_api.RunApi.as_view(), name="agent-run"),
    path("sessions/<str:pk>/events", run_api.SessionEventsApi.as_view(), name="session-events"),
    path("sessions/<str:pk>/stop", run_api.SessionStopApi.as_view(), name="session-stop"),
    path("sessions/<str:pk>/approvals/<str:approval_id>", approvals_api.ApprovalDecisionApi.as_view(),
         name="session-approval-decide"),  # fmt: skip
    path("approvals", approvals_api.ApprovalList.as_view(), name="approvals"),
]
