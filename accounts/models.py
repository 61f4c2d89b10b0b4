from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.dispatch import Signal

# Sent by User.save() when a user's sessions must end (password changed, or deactivated), with
# `user_id`, `reason` and `deactivated`; accounts/signals.py ends them.
sessions_must_end = Signal()


def normalize_email(email: str) -> str:
    """Emails are the login name and unique whatever their letter case: stored lower-case."""
    return (email or "").strip().lower()


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, email: str) -> User:
        return self.get(email=normalize_email(email))

    def create_user(self, email: str, password: str | None = None, **fields) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=normalize_email(email), **fields)
        user.set_password(password)  # None gives an unusable password (provider-only users)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields) -> User:
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    class Provider(models.TextChoices):
        PASS = "PASS", "Email and password"
        GITHUB = "GITHUB", "GitHub"
        MICROSOFT = "MICROSOFT", "Microsoft"
        OIDC = "OIDC", "OpenID Connect"

    name = models.CharField(max_length=255)
    email = models.EmailField(max_length=254, unique=True)
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.PASS)
    # The provider's stable subject (`sub`) for users who sign in through it.
    external_id = models.CharField(max_length=255, null=True, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Can log in to the admin site.")
    legal_hold = models.BooleanField(
        default=False,
        help_text="Under legal hold: nothing of this user is purged by retention or erased (their own request "
        "included) until released.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        ordering = ["id"]
        constraints = [
            # With the unique index on email this makes uniqueness case-insensitive.
            models.CheckConstraint(condition=models.Q(email=Lower("email")), name="accounts_user_email_lowercase"),
            models.UniqueConstraint(
                fields=["provider", "external_id"],
                condition=models.Q(external_id__isnull=False),
                name="accounts_user_provider_external_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)

    _password_disabled = False  # set_unusable_password() called since the last save

    def set_unusable_password(self) -> None:
        super().set_unusable_password()
        self._password_disabled = True  # the admin's "disable password-based authentication"

    def save(self, *args, **kwargs) -> None:
        # Ending sessions is detected here, at the one place every way of changing a password or
        # deactivating a user reaches: our REST endpoint, Django's password change and reset forms,
        # the admin's password and user forms, `manage.py changepassword`, the shell. Hooking each
        # of those instead means our own copy of several Django forms and commands, and a stolen
        # refresh token keeps working through whichever one is missed. `_password` is set by
        # set_password() only (not by the hash upgrade at login), so a re-hash ends nothing.
        password_changed = (self._password is not None or self._password_disabled) and not self._state.adding
        deactivated = (
            not self.is_active
            and not self._state.adding
            and type(self).objects.filter(pk=self.pk, is_active=True).exists()
        )
        super().save(*args, **kwargs)
        self._password_disabled = False
        if password_changed or deactivated:
            # accounts/signals.py ends them (accounts.services.user_sessions_end).
            sessions_must_end.send(
                sender=type(self), user_id=self.pk, deactivated=deactivated,
                reason="Password changed." if password_changed else "Account deactivated.",
            )  # fmt: skip

    def get_full_name(self) -> str:
        return self.name

    def get_short_name(self) -> str:
        return self.name


class RefreshTokenRecord(models.Model):
    """What revoking a refresh token needs, and nothing that could be used as one: its `jti`, its
    user and its expiry. (simplejwt's blacklist app stored each whole token, so a database dump
    handed out working refresh tokens.) A token is accepted only while its record exists and is
    not revoked; rotation revokes it, so each is single-use."""

    jti = models.CharField(max_length=255, unique=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="refresh_tokens")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, help_text="Used (rotated), logged out or revoked.")

    class Meta:
        indexes = [models.Index(fields=["user", "revoked_at"], name="accounts_refresh_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.jti}"


class ApiKey(models.Model):
    """A personal API key: a long-lived bearer credential for tools that speak the OpenAI API
    (editor plugins, chat front ends, scripts). Only a keyed hash of the key is stored (see
    accounts.services.api_key_hash); `prefix` is the key's first characters, enough to recognise it
    in a list and useless for signing in."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, help_text="HMAC-SHA256 of the key (hex).")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="Updated at most once a minute.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "revoked_at"], name="accounts_apikey_user_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
