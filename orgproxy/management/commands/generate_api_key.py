"""`manage.py generate_api_key`: create the organization's Claire API key (replaces the
reference's generate_api_key.sh).

Values come from flags; any that are missing are asked for when the input is a terminal (the
token without echo), with the same checks, and are an error otherwise. Prints the secret and
the `CLAIRE__API_KEY=...` line for `.env.local`. Any failure exits non-zero with one line.
"""

from __future__ import annotations

import getpass
import logging
import re
import sys
from datetime import datetime, timezone
from typing import Callable

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orgproxy import claire_client
from orgproxy.serializers import ORG_ID_PATTERN

_ORG_ID = re.compile(ORG_ID_PATTERN, re.IGNORECASE)
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
ATTEMPTS = 3


def valid_org_id(value: str) -> str:
    value = value.strip()
    if not _ORG_ID.match(value):
        raise ValueError("The organization id must look like org-<uuid>, e.g. org-0b6f3c9e-1d2a-4c5b-9e8f-123456789abc.")
    return value.lower()


def valid_token(value: str) -> str:
    value = value.strip().removeprefix("Bearer ").strip()
    if not _JWT.match(value):
        raise ValueError("The token must be a bearer JWT (three dot-separated parts), without quotes.")
    return value


def valid_label(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("The label must not be empty.")
    if len(value) > 255:
        raise ValueError("The label must be at most 255 characters.")
    return value


def valid_expiry(value: str, *, now: datetime | None = None) -> str:
    """An ISO-8601 date or date-time in the future, as UTC `YYYY-MM-DDTHH:MM:SSZ` (no zone = UTC)."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("The expiry must be an ISO-8601 date or date-time, e.g. 2027-01-31T00:00:00Z.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment <= (now or datetime.now(timezone.utc)):
        raise ValueError("The expiry must be in the future.")
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Command(BaseCommand):
    help = "Create an API key of the organization on Claire and print the CLAIRE__API_KEY line for .env.local."
    stealth_options = ("stdin",)
    requires_system_checks: list = []  # talks to Claire only; the site's checks are not its business

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org-id", help="The organization's id, org-<uuid>.")
        parser.add_argument(
            "--token", help="Your bearer JWT for the Claire API (asked without echo if not given)."
        )
        parser.add_argument("--label", help="A name for the key, e.g. 'organization server production'.")
        parser.add_argument("--expires-at", help="ISO-8601 expiry in the future, e.g. 2027-01-31T00:00:00Z.")
        parser.add_argument("--base-url", default=None, help="Claire API base URL (default: CLAIRE__BASE_URL).")

    def handle(self, *args, **options) -> None:
        self.stdin = options.get("stdin") or sys.stdin  # call_command(stdin=...) in tests
        base_url = (options["base_url"] or settings.CLAIRE_BASE_URL).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise CommandError(f"--base-url must be an http(s) URL, not {base_url!r}.")
        fields: list[tuple[str, str, Callable[[str], str], bool]] = [
            ("org_id", "Organization id (org-<uuid>)", valid_org_id, False),
            ("token", "Bearer token (JWT)", valid_token, True),
            ("label", "Label", valid_label, False),
            ("expires_at", "Expires at (ISO-8601, e.g. 2027-01-31T00:00:00Z)", valid_expiry, False),
        ]
        missing = [name for name, *_ in fields if options[name] in (None, "")]
        if missing and not self._interactive():
            flags = ", ".join(f"--{name.replace('_', '-')}" for name in missing)
            raise CommandError(f"Missing {flags}: give them as flags (input is not a terminal, so no prompts).")
        values = {}
        for name, prompt, validate, secret in fields:
            if options[name] not in (None, ""):
                try:
                    values[name] = validate(options[name])
                except ValueError as exc:
                    raise CommandError(str(exc)) from None
            else:
                values[name] = self._ask(prompt, validate, secret=secret)

        try:
            created = self._create(base_url=base_url, values=values, verbosity=options["verbosity"])
        except claire_client.UpstreamStatusError as exc:
            if exc.upstream_status in (401, 403):
                raise CommandError(
                    f"Claire refused the token (HTTP {exc.upstream_status}): use a valid, unexpired bearer JWT "
                    "of a user allowed to manage this organization's keys."
                ) from None
            if exc.upstream_status == 404:
                raise CommandError(f"Claire does not know organization {values['org_id']} (HTTP 404).") from None
            raise CommandError(f"Claire could not create the key (HTTP {exc.upstream_status}).") from None
        except claire_client.UpstreamTimeout:
            raise CommandError(f"Claire at {base_url} did not answer in time; nothing is known to be created.") from None
        except claire_client.UpstreamUnavailable:
            raise CommandError(f"Could not connect to Claire at {base_url}.") from None
        except claire_client.UpstreamBadResponse:
            raise CommandError("Claire's answer had no key secret; was --base-url the Claire API?") from None

        secret = created["secret"]
        self.stdout.write(f"Created API key {values['label']!r}, expires {values['expires_at']}.")
        self.stdout.write("Its secret is shown only this once. Add this line to .env.local:")
        self.stdout.write("")
        self.stdout.write(f"CLAIRE__API_KEY={secret}")

    def _create(self, *, base_url: str, values: dict[str, str], verbosity: int) -> dict:
        # The client's warning would repeat the CommandError below; show it with -v 2 only.
        client_logger = logging.getLogger(claire_client.__name__)
        level = client_logger.level
        if verbosity < 2:
            client_logger.setLevel(logging.ERROR)
        try:
            return claire_client.api_key_create(base_url=base_url, **values)
        finally:
            client_logger.setLevel(level)

    def _interactive(self) -> bool:
        isatty = getattr(self.stdin, "isatty", None)
        return bool(isatty and isatty())

    def _ask(self, prompt: str, validate: Callable[[str], str], *, secret: bool) -> str:
        for _ in range(ATTEMPTS):
            if secret and self.stdin is sys.stdin:
                raw = getpass.getpass(f"{prompt}: ")
            else:
                self.stdout.write(f"{prompt}: ", ending="")
                self.stdout.flush()
                raw = self.stdin.readline()
                if not raw:
                    raise CommandError("Input ended before every value was given.")
            try:
                return validate(raw)
            except ValueError as exc:
                self.stderr.write(str(exc))
        raise CommandError(f"No valid value after {ATTEMPTS} attempts: {prompt}.")
