"""`manage.py rotate_encryption_keys`: re-encrypt every stored secret with the first key of
FIELD_ENCRYPTION_KEYS. Rotation: put the new key first (keep the old ones after it), run this,
then remove the old keys."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from agents import services


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field with the first key of FIELD_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        counts = services.encrypted_fields_rotate()
        for label, count in counts.items():
            self.stdout.write(f"{label}: re-encrypted {count} row(s).")
        self.stdout.write(f"Done: {sum(counts.values())} row(s) re-encrypted with the first key.")
