from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from assistant.services import turn_events_prune


class Command(BaseCommand):
    help = "Delete the stored streaming events of turns older than --days (messages are kept). Run it daily."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=float, default=7, help="Keep the events of the last DAYS days (default 7).")

    def handle(self, *args, days: float, **options):
        if days < 0:
            raise CommandError("--days must not be negative.")
        deleted = turn_events_prune(older_than=timedelta(days=days))
        self.stdout.write(f"Deleted {deleted} turn events older than {days:g} days.")
