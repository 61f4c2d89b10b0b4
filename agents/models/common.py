"""What the models share: the owner field, the check of a user's endpoint URL."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from config import egress


def _check_users_url(url: str, *, field: str) -> None:
    """A URL an ordinary user chose passes the egress policy (checked again at connect time)."""
    try:
        egress.check_url(url)
    except egress.EgressRefused as refused:
        raise ValidationError({field: [f"{refused} Ask staff to list the host in OUTBOUND_ALLOWED_HOSTS if it is "
                                       "meant to be reachable."]}) from None


def _owner_field(related_name: str) -> models.ForeignKey:
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name=related_name,
        help_text="Empty: organization-wide (visible to every user, managed by staff).",
    )
