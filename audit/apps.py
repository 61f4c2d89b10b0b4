from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit: logins and tool calls"  # model changes are under auditlog's "Audit log"

    def ready(self) -> None:
        from audit import registry, signals  # noqa: F401  (model changes via django-auditlog; failed logins)

        registry.register_models()
