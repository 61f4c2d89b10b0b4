from assistant.tests.conftest import agent, fake  # noqa: F401
