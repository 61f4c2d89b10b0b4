from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage and budgets"

    def ready(self) -> None:
        from usage import signals  # noqa: F401  (budgets and groups move the catalog's version)
