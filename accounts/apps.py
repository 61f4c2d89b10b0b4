from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from accounts import schema  # noqa: F401  (registers the OpenAPI extension)
        from accounts import signals  # noqa: F401  (ends sessions on user deletion and logout)
