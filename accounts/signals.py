"""Ending sessions: when User.save() says they must end (a password change, a deactivation), when a
user is deleted, and on a cookie logout."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete
from django.dispatch import receiver

from accounts import services
from accounts.models import User, sessions_must_end


@receiver(sessions_must_end, sender=User, dispatch_uid="accounts.user_sessions_end")
def _sessions_must_end(sender, user_id: int, reason: str, deactivated: bool, **kwargs) -> None:
    services.user_sessions_end(user_id=user_id, reason=reason)
    if deactivated:  # API keys survive a password change, not a deactivation (accounts.services)
        services.api_keys_revoke_all(user_id=user_id)


@receiver(post_delete, sender=User, dispatch_uid="accounts.user_deleted_sessions_end")
def _user_deleted(sender, instance: User, **kwargs) -> None:
    # A signal rather than User.delete(): the admin's bulk delete doesn't call delete() per user.
    services.user_sessions_end(user_id=instance.pk, reason="Account deleted.")


@receiver(user_logged_out, dispatch_uid="accounts.browser_session_sockets_close")
def _logged_out(sender, request, user, **kwargs) -> None:
    # Sent by django.contrib.auth.logout() (our logout view, the admin's, the OIDC logout) before
    # the session is flushed, so its key is still known here.
    session = getattr(request, "session", None)
    services.browser_session_sockets_close(session_key=getattr(session, "session_key", None), reason="Signed out.")
