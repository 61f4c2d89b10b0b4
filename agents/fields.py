"""Model fields whose values are encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

Keys come from `settings.FIELD_ENCRYPTION_KEYS`: the first key encrypts, every key decrypts, so keys
can be rotated (`manage.py rotate_encryption_keys` re-encrypts every value with the first key).
A value that no configured key can decrypt raises `EncryptionKeyError`: never the ciphertext, never
an empty value that would silently drop a secret. Encrypted columns can't be filtered on (Fernet is
randomised): look rows up by other columns.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class EncryptionKeyError(RuntimeError):
    """A stored secret can't be decrypted with any key in FIELD_ENCRYPTION_KEYS."""


@lru_cache(maxsize=8)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: at least one Fernet key is needed.")
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS entry {position} is not a Fernet key (32 url-safe base64-encoded "
                "bytes; make one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`)."
            ) from exc
    return MultiFernet(fernets)


def fernet() -> MultiFernet:
    return _multi_fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt_str(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt_str(token: str, *, what: str = "a value") -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise EncryptionKeyError(
            f"Cannot decrypt {what}: none of FIELD_ENCRYPTION_KEYS matches the key it was encrypted with "
            "(was the key, or SECRET_KEY it is derived from, changed without rotating?)."
        ) from exc


class _EncryptedMixin:
    """Stores `encrypt(to_text(value))` in a text column; empty values are stored as they are."""

    def _label(self) -> str:
        model = getattr(self, "model", None)
        return f"{model._meta.label}.{self.name}" if model else str(self.name)

    def _to_text(self, value: Any) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def _from_text(self, text: str) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _is_empty(self, value: Any) -> bool:
        return value is None or value == ""

    def get_prep_value(self, value: Any) -> Any:
        if self._is_empty(value):
            return value
        return encrypt_str(self._to_text(value))

    def from_db_value(self, value: Any, expression, connection) -> Any:
        if self._is_empty(value):
            return value
        return self._from_text(decrypt_str(value, what=self._label()))

    def get_internal_type(self) -> str:
        return "TextField"


class EncryptedTextField(_EncryptedMixin, models.TextField):
    """A string secret (an API key)."""

    def _to_text(self, value: Any) -> str:
        return str(value)

    def _from_text(self, text: str) -> str:
        return text

    def to_python(self, value: Any) -> Any:
        return value if value is None else str(value)


class EncryptedJSONField(_EncryptedMixin, models.TextField):
    """A JSON secret (a token string or an object of credentials), stored encrypted as text."""

    def _to_text(self, value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)

    def _from_text(self, text: str) -> Any:
        return json.loads(text)

    def to_python(self, value: Any) -> Any:
        return value

    def value_to_string(self, obj: models.Model) -> str:
        return self._to_text(self.value_from_object(obj))


def mask_secret(value: str | None) -> str:
    """`sk-ant-api03-…abcd`-style display: a short prefix, an ellipsis and the last four characters.
    Secrets shorter than 20 characters are masked entirely (the ends would give too much away)."""
    if not value:
        return ""
    if len(value) < 20:
        return "•" * 8
    prefix = value[: min(6, len(value) // 5)]
    return f"{prefix}…{value[-4:]}"


def mask_credentials(value: Any) -> Any:
    """Masks every string inside a credentials value (a string, or an object of strings)."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return {key: mask_credentials(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_credentials(item) for item in value]
    if isinstance(value, str):
        return mask_secret(value)
    return "•" * 8
