"""The assistant's fixtures (the fake Messages API, an agent on it), for the usage tests."""

from assistant.tests.conftest import agent, code_agent, fake  # noqa: F401
