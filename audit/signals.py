from __future__ import annotations

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver

from audit import services


@receiver(user_login_failed, dispatch_uid="audit.login_failed")
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    # `credentials` has the password already replaced by Django; only the email is kept.
    email = credentials.get("email") or credentials.get("username") or ""
    services.login_failure_record(request=request, email=str(email))
