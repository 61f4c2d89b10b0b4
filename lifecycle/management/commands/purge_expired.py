"""`manage.py purge_expired`: delete what retention says has expired (docs/data-lifecycle.md). Safe
from cron on any replica, concurrently with another run or with the serving processes' daily purge."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from lifecycle.purge import purge_expired


class Command(BaseCommand):
    help = "Delete sessions, replay events, audit rows and exports past their retention."

    def handle(self, *args, **options) -> None:
        counts = purge_expired()
        self.stdout.write(", ".join(f"{kind}: {number}" for kind, number in counts.items()))
