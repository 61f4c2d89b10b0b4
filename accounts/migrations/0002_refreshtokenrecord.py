"""Refresh tokens are recorded by jti, user and expiry only (accounts.RefreshTokenRecord).

simplejwt's token_blacklist app (now uninstalled) stored every refresh token whole: its records are
carried over without the token text (so the sessions they stand for keep working, and blacklisted
ones stay refused), then its tables are dropped."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

OUTSTANDING = "token_blacklist_outstandingtoken"
BLACKLISTED = "token_blacklist_blacklistedtoken"


def carry_over_and_drop_stored_tokens(apps, schema_editor):
    connection = schema_editor.connection
    tables = set(connection.introspection.table_names())
    if OUTSTANDING not in tables:
        return  # a database that never had the blacklist app
    record = apps.get_model("accounts", "RefreshTokenRecord")
    quote = schema_editor.quote_name
    with connection.cursor() as cursor:
        blacklisted = set()
        if BLACKLISTED in tables:
            cursor.execute(f"SELECT {quote('token_id')} FROM {quote(BLACKLISTED)}")
            blacklisted = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            f"SELECT {quote('id')}, {quote('jti')}, {quote('user_id')}, {quote('expires_at')}, {quote('created_at')}"
            f" FROM {quote(OUTSTANDING)} WHERE {quote('user_id')} IS NOT NULL"
        )
        rows = cursor.fetchall()
    record.objects.bulk_create(
        [
            record(jti=jti, user_id=user_id, expires_at=expires_at, revoked_at=created_at if pk in blacklisted else None)
            for pk, jti, user_id, expires_at, created_at in rows
        ],
        batch_size=1000,
        ignore_conflicts=True,
    )
    for table in (BLACKLISTED, OUTSTANDING):  # the blacklisted table points at the outstanding one
        if table in tables:
            schema_editor.execute(f"DROP TABLE {quote(table)}")
    schema_editor.execute("DELETE FROM django_migrations WHERE app = %s", ["token_blacklist"])


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="RefreshTokenRecord",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("jti", models.CharField(max_length=255, unique=True)),
                ("expires_at", models.DateTimeField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("revoked_at", models.DateTimeField(blank=True, help_text="Used (rotated), logged out or revoked.", null=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="refresh_tokens", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["user", "revoked_at"], name="accounts_refresh_user_idx")],
            },
        ),
        # Not reversible in substance: the token text is gone for good (which is the point).
        migrations.RunPython(carry_over_and_drop_stored_tokens, migrations.RunPython.noop),
    ]
