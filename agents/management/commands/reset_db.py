"""`manage.py reset_db`: drop every table of the database, then migrate from scratch."""

from __future__ import annotations

import sys

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection


def _drop_all_tables() -> list[str]:
    tables = connection.introspection.table_names(include_views=False)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if tables:
                names = ", ".join(connection.ops.quote_name(name) for name in tables)
                cursor.execute(f"DROP TABLE IF EXISTS {names} CASCADE")
        else:
            cursor.execute("PRAGMA foreign_keys = OFF")
            for name in tables:
                cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(name)}")
            cursor.execute("PRAGMA foreign_keys = ON")
    return tables


class Command(BaseCommand):
    help = "Delete ALL data: drop every table, then run every migration again."

    def add_arguments(self, parser):
        parser.add_argument("--yes", action="store_true", help="Don't ask for confirmation.")

    def handle(self, *args, **options):
        if connection.vendor not in ("postgresql", "sqlite"):
            raise CommandError(f"reset_db supports PostgreSQL and SQLite, not {connection.vendor}.")
        if not options["yes"]:
            if not sys.stdin.isatty():
                raise CommandError("Refusing to reset without confirmation: run it in a terminal or pass --yes.")
            name = connection.settings_dict["NAME"]
            answer = input(f"This deletes ALL data in database {name!s}. Type 'yes' to continue: ")
            if answer.strip().lower() != "yes":
                raise CommandError("Aborted; nothing was changed.")
        dropped = _drop_all_tables()
        self.stdout.write(f"Dropped {len(dropped)} tables.")
        call_command("migrate", interactive=False, verbosity=max(options["verbosity"] - 1, 0))
        self.stdout.write("Database migrated from scratch.")
