"""Login and registration throttles. Password hashing makes every attempt cost ~0.2 s of CPU, so
both an attacker's guesses and a flood of attempts are limited: per client IP and, for login,
per submitted email (whatever IP it comes from). Counts live in the shared cache (Redis in
production), so the limits hold across processes."""

from __future__ import annotations

import hashlib

from rest_framework.throttling import SimpleRateThrottle

from accounts.models import normalize_email


class _PerIpThrottle(SimpleRateThrottle):
    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginIpThrottle(_PerIpThrottle):
    scope = "login_ip"


class RegisterIpThrottle(_PerIpThrottle):
    scope = "register_ip"


class LoginEmailThrottle(SimpleRateThrottle):
    scope = "login_email"

    def get_cache_key(self, request, view):
        email = request.data.get("email") if isinstance(request.data, dict) else None
        if not isinstance(email, str) or not email:
            return None  # nothing to key on; the per-IP throttle still applies
        ident = hashlib.sha256(normalize_email(email).encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class PasswordChangeIpThrottle(_PerIpThrottle):
    """Guesses at the current password cost a hash like logins do: they share the login budgets."""

    scope = "login_ip"


class PasswordChangeUserThrottle(SimpleRateThrottle):
    # Keyed like LoginEmailThrottle on the user's email: guesses at one account's password count
    # together, through the login or the password change.
    scope = "login_email"

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None
        ident = hashlib.sha256(normalize_email(request.user.email).encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}
