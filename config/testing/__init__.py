"""pytest plugin loaded before Django is configured (`-p config.testing` in pyproject.toml).

Gives the test run a SECRET_KEY of its own unless one is set, so `pytest` works on a fresh
checkout. Everything else comes from config/settings.py, as in production."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
