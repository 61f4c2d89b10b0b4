"""A process refreshing one connection at a given moment (the refresh race's tests start two):
    python -m connections.tests.refresh_child <connection id> <unix time to start at>
Prints the outcome as JSON. DATABASE_URL names the test's database."""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from connections.services import connection_refresh  # noqa: E402

time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
outcome = connection_refresh(connection_id=int(sys.argv[1]))
print(json.dumps({"refreshed": outcome.refreshed, "status": outcome.status}), flush=True)
