"""The production password hasher: Argon2id with parameters at or above OWASP's minimum, old
hashes still verify and are re-made with the configured parameters at login."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.hashers import Argon2PasswordHasher, check_password, identify_hasher, make_password

from accounts.hashers import TunedArgon2PasswordHasher
from accounts.models import User

PRODUCTION_HASHERS = ["accounts.hashers.TunedArgon2PasswordHasher", "django.contrib.auth.hashers.PBKDF2PasswordHasher"]


def test_the_configured_argon2_parameters_are_at_least_owasps_minimum():
    from config import settings as configured  # the module itself: tests swap the hasher list

    assert configured.PASSWORD_HASHERS[0] == "accounts.hashers.TunedArgon2PasswordHasher"
    assert configured.ARGON2_MEMORY_COST_KIB >= 19 * 1024
    assert configured.ARGON2_TIME_COST >= 2
    assert configured.ARGON2_PARALLELISM >= 1
    hasher = TunedArgon2PasswordHasher()
    assert (hasher.memory_cost, hasher.time_cost, hasher.parallelism) == (
        configured.ARGON2_MEMORY_COST_KIB, configured.ARGON2_TIME_COST, configured.ARGON2_PARALLELISM
    )


def test_hashes_carry_the_configured_parameters(settings):
    settings.PASSWORD_HASHERS = PRODUCTION_HASHERS
    settings.ARGON2_MEMORY_COST_KIB, settings.ARGON2_TIME_COST, settings.ARGON2_PARALLELISM = 19456, 2, 1
    encoded = make_password("a long passphrase")
    assert encoded.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    assert check_password("a long passphrase", encoded)
    assert not check_password("another passphrase", encoded)


@pytest.mark.django_db
def test_a_hash_with_djangos_default_parameters_still_logs_in_and_is_remade_with_ours(api_client, settings):
    settings.PASSWORD_HASHERS = PRODUCTION_HASHERS
    settings.ARGON2_MEMORY_COST_KIB, settings.ARGON2_TIME_COST, settings.ARGON2_PARALLELISM = 19456, 2, 1
    user = User.objects.create_user(email="old@example.com", password=None, name="Old")
    old_hash = Argon2PasswordHasher().encode("an old passphrase", Argon2PasswordHasher().salt())
    User.objects.filter(pk=user.pk).update(password=old_hash)
    assert "m=102400,t=2,p=8" in old_hash

    credentials = {"email": "old@example.com", "password": "an old passphrase"}
    response = api_client.post("/api/v1/auth/login", credentials, format="json")

    assert response.status_code == 200
    user.refresh_from_db()
    assert "$m=19456,t=2,p=1$" in user.password
    assert isinstance(identify_hasher(user.password), TunedArgon2PasswordHasher)


@pytest.mark.parametrize(
    "variable, value", [("ARGON2_MEMORY_COST_KIB", "8192"), ("ARGON2_TIME_COST", "1"), ("ARGON2_PARALLELISM", "0")]
)
def test_the_server_refuses_argon2_parameters_below_owasps_minimum(variable, value):
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": "sqlite://:memory:", variable: value}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=django_settings.BASE_DIR, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "below OWASP's minimum" in result.stderr
