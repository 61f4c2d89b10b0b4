from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower


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

    def get_full_name(self) -> str:
        return self.name

    def get_short_name(self) -> str:
        return self.name
