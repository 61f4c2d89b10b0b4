from rest_framework.routers import SimpleRouter

from agents import api

# No trailing slashes, like the auth endpoints (/api/v1/auth/login).
router = SimpleRouter(trailing_slash=False)
router.register("llm-configs", api.LLMProviderConfigViewSet, basename="llm-config")
router.register("integrations", api.IntegrationViewSet, basename="integration")
router.register("prompts", api.PromptTemplateViewSet, basename="prompt")
router.register("agents", api.AIAgentViewSet, basename="agent")
router.register("sessions", api.UserAgentSessionViewSet, basename="session")

urlpatterns = router.urls
