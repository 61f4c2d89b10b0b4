"""Argon2 with parameters from settings (ARGON2_*), checked there against OWASP's minimum.

Django's Argon2PasswordHasher uses m=100 MiB, t=2, p=8: ~0.18 s and 100 MiB per login on
these machines, so one process signs in ~5 users a second and 16 concurrent logins can
take 1.6 GB. The default here, m=32 MiB, t=2, p=1, is at or above OWASP's minimum on every
parameter (m=19 MiB, t=2, p=1) and ~5x cheaper (bench/RESULTS.md). Hashes made with other
parameters still verify (they are in the hash) and are re-made with these at the user's next
login (Django's `must_update`)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher


class TunedArgon2PasswordHasher(Argon2PasswordHasher):
    # Same algorithm name as Django's: existing `argon2$…` hashes are this hasher's to check.
    algorithm = "argon2"

    @property
    def time_cost(self) -> int:
        return settings.ARGON2_TIME_COST

    @property
    def memory_cost(self) -> int:
        return settings.ARGON2_MEMORY_COST_KIB

    @property
    def parallelism(self) -> int:
        return settings.ARGON2_PARALLELISM
