"""The agent platform's domain: LLM configs, integrations, the prompt library, agents, and the
sessions users hold with agents with their messages.

Ownership: `owner` null means organization-wide (managed by staff in admin); a user sees their own
objects plus organization-wide ones (plus prompts other users shared with `visibility=organization`)
and changes only their own. Sessions and messages are strictly their owner's.

One module per concern; this package re-exports every model (and what migrations name, e.g.
`agents.models._forget_deleted_prompt`), imported in the order they were declared.
"""

from .llm_configs import LLMProviderConfig
from .integrations import Integration
from .prompts import VARIABLE_RE, PromptTemplate, PromptTemplateVersion, PromptVariable, prompt_variables
from .agents import AIAgent, _forget_deleted_prompt
from .sessions import Message, UserAgentSession
from .versions import AIAgentVersion
from .catalog import Catalog

__all__ = [
    "AIAgent",
    "AIAgentVersion",
    "Catalog",
    "Integration",
    "LLMProviderConfig",
    "Message",
    "PromptTemplate",
    "PromptTemplateVersion",
    "PromptVariable",
    "UserAgentSession",
    "VARIABLE_RE",
    "prompt_variables",
]
