from django.apps import AppConfig


class ConnectionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "connections"
    verbose_name = "Connections"

    def ready(self) -> None:
        from connections import signals  # noqa: F401 - registers the receivers
