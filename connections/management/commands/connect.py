"""`manage.py connect <integration>`: the operator's own connection to an integration, for the CLI's runs
(`run_orchestrator`). OAuth: prints the authorize URL, then waits for the site's callback to finish it,
or takes the redirect URL (or just its code) pasted here. A personal token: `--token`, or asked for."""

from __future__ import annotations

import getpass
import select
import sys
import time
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone

from agents.models import Integration
from connections import services
from connections.models import Connection


class Command(BaseCommand):
    help = "Connect a user (the first superuser by default) to an integration: OAuth or a personal token."

    def add_arguments(self, parser):
        parser.add_argument("integration", help="The integration's id or name (organization-wide ones).")
        parser.add_argument("--user", help="The user's email (default: the first active superuser).")
        parser.add_argument("--token", help="per_user_token integrations: the token (else asked for).")
        parser.add_argument("--base-url", help="This site's public URL, for the OAuth callback "
                            "(default: CONNECTIONS_PUBLIC_URL).")  # fmt: skip
        parser.add_argument("--wait", type=float, default=600, help="Seconds to wait for the callback.")

    def handle(self, *args, integration, user=None, token=None, base_url=None, wait=600, **options):
        target = self._integration(integration)
        person = self._user(user)
        try:
            if target.auth == "per_user_token":
                token = token or getpass.getpass(f"Token for {target}: ")
                services.token_connect(user=person, integration=target, token=token)
                self.stdout.write(f"Connected {person.email} to {target}.")
                return
            base = base_url or settings.CONNECTIONS_PUBLIC_URL
            if not base:
                raise CommandError("Give --base-url (this site's public URL) or set CONNECTIONS_PUBLIC_URL.")
            started = timezone.now()
            url = services.oauth_start(user=person, integration=target, base_url=base)
        except services.ConnectError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Open this URL in a browser and authorize:\n\n{url}\n")
        self.stdout.write("Waiting for the callback; or paste the URL you were sent back to (or its code):")
        self.stdout.flush()
        state = parse_qs(urlsplit(url).query)["state"][0]
        self._wait(person, target, state, started, wait)
        self.stdout.write(f"Connected {person.email} to {target}.")

    def _wait(self, person, target, state: str, started, wait: float) -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if Connection.objects.filter(user=person, integration=target, connected_at__gte=started).exists():
                return  # the site's callback finished it
            readable, _, _ = select.select([sys.stdin], [], [], 1.0)
            if not readable:
                continue
            line = sys.stdin.readline().strip()
            if not line:
                continue
            query = parse_qs(urlsplit(line).query) if "?" in line else {}
            code = query.get("code", [line if not query else ""])[0]
            if query.get("state", [state])[0] != state:
                raise CommandError("That redirect URL belongs to another authorization.")
            try:
                services.oauth_finish(state=state, code=code, error=query.get("error", [""])[0])
            except services.ConnectError as exc:
                raise CommandError(exc.message) from None
            return
        raise CommandError(f"No callback within {wait:g} s; run the command again.")

    def _integration(self, value: str) -> Integration:
        match = Q(name=value) | Q(provider=value)
        if value.isdecimal():
            match |= Q(pk=int(value))
        found = list(Integration.objects.filter(match, owner__isnull=True, is_active=True)[:2])
        if len(found) != 1:
            raise CommandError(f"No single active organization integration {value!r}.")
        return found[0]

    def _user(self, email: str | None):
        users = get_user_model().objects.filter(is_active=True)
        person = users.filter(email__iexact=email).first() if email else users.filter(is_superuser=True).order_by("pk").first()
        if person is None:
            raise CommandError(f"No active user {email}." if email else "No active superuser: give --user.")
        return person
