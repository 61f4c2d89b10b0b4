"""`manage.py flushexpiredtokens`: delete the records of expired refresh tokens (run it daily).
Takes the name of simplejwt's command, which went with its blacklist app."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from accounts import services


class Command(BaseCommand):
    help = "Delete the records of expired refresh tokens."

    def handle(self, *args, **options):
        deleted = services.refresh_tokens_flush_expired()
        self.stdout.write(f"Deleted {deleted} expired refresh-token record{'s' if deleted != 1 else ''}.")
