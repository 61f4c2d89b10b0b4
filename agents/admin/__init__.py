"""Admin screens for the agent platform. Saves go through the services (defaults, version history),
secrets are typed into password fields (blank keeps the current value) and shown masked.

One module per concern; importing them registers their screens (Django's admin autodiscovery imports
this package)."""

from .agents import AIAgentAdmin, AIAgentForm
from .integrations import IntegrationAdmin, IntegrationForm
from .llm_configs import LLMProviderConfigAdmin, LLMProviderConfigForm
from .prompts import PromptTemplateAdmin, PromptTemplateForm, PromptTemplateVersionAdmin, PromptTemplateVersionInline
from .sessions import MessageAdmin, MessageInline, UserAgentSessionAdmin
from .versions import AIAgentVersionAdmin

__all__ = [
    "AIAgentAdmin",
    "AIAgentForm",
    "AIAgentVersionAdmin",
    "IntegrationAdmin",
    "IntegrationForm",
    "LLMProviderConfigAdmin",
    "LLMProviderConfigForm",
    "MessageAdmin",
    "MessageInline",
    "PromptTemplateAdmin",
    "PromptTemplateForm",
    "PromptTemplateVersionAdmin",
    "PromptTemplateVersionInline",
    "UserAgentSessionAdmin",
]
