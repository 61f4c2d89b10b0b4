from __future__ import annotations

import pytest

from orgproxy.tests.fake_claire import API_KEY, BOT_A, BOT_B

pytestmark = pytest.mark.django_db


def test_it_lists_the_organizations_bots(auth_client, claire):
    response = auth_client.get("/bots")

    assert response.status_code == 200
    assert response.json() == [
        {"name": "Support", "bot_id": BOT_A, "meta": {"lang": "en"}},
        {"name": "Sales", "bot_id": BOT_B, "meta": None},
    ]
    [call] = claire.calls()
    assert (call.method, call.path, call.query) == ("GET", "/m2m/organizations/bots", [])
    assert call.headers["authorization"] == f"Bearer {API_KEY}"
