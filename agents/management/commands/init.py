"""`manage.py init`: migrate, seed the starter agents/prompts/LLM config, optionally create an admin.

Idempotent, and safe when several containers run it at once: on PostgreSQL the whole run holds an
advisory lock (the others wait, then find everything done); seeding also tolerates losing a race."""

from __future__ import annotations

import zlib
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from agents import services

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_ID = zlib.crc32(b"conduit:init")


@contextmanager
def _init_lock():
    """One `init` at a time per database: a PostgreSQL advisory lock, or for a SQLite file an
    exclusive lock on a file beside it (concurrent migrations would both try to create the tables)."""
    if connection.vendor == "sqlite":
        name = str(connection.settings_dict["NAME"])
        if name == ":memory:" or name.startswith("file:") or fcntl is None:
            yield
            return
        with open(f"{name}.init-lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file is closed
            yield
        return
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_ID])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_ID])


class Command(BaseCommand):
    help = "Migrate the database, seed starter agents and prompts, optionally create an admin user."

    def add_arguments(self, parser):
        parser.add_argument("--admin-email", default=settings.INIT_ADMIN_EMAIL, help="Default: INIT_ADMIN_EMAIL.")
        parser.add_argument(
            "--admin-password", default=settings.INIT_ADMIN_PASSWORD, help="Default: INIT_ADMIN_PASSWORD."
        )
        parser.add_argument("--admin-name", default=settings.INIT_ADMIN_NAME, help="Default: INIT_ADMIN_NAME.")
        parser.add_argument("--no-seed", action="store_true", help="Only migrate (and create the admin).")

    def handle(self, *args, **options):
        email, password = options["admin_email"], options["admin_password"]
        if bool(email) != bool(password):
            raise CommandError("Give both an admin email and an admin password, or neither.")
        if password:
            try:
                validate_password(password)
            except ValidationError as exc:
                raise CommandError(f"Admin password refused: {' '.join(exc.messages)}") from exc

        with _init_lock():
            call_command("migrate", interactive=False, verbosity=max(options["verbosity"] - 1, 0))
            self.stdout.write("Database migrated.")
            if not options["no_seed"]:
                done = services.starter_data_seed()
                self.stdout.write(("Seeded: " + "; ".join(done) + ".") if done else "Starter data already present.")
            if email:
                user, created = services.admin_user_ensure(email=email, password=password, name=options["admin_name"])
                self.stdout.write(
                    f"Created admin user {user.email}." if created else f"Admin user {user.email} already exists."
                )
