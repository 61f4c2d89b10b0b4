"""The fixtures of the apps whose work these tests watch: the fake model and an agent on it
(assistant/tests/conftest.py), the fake Claire API (orgproxy/tests/conftest.py)."""

from assistant.tests.conftest import agent, fake  # noqa: F401
from orgproxy.tests.conftest import claire  # noqa: F401
