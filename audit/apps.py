from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit: logins and tool calls"  # model changes are under auditlog's "Audit log"

    def ready(self) -> None:
        from audit import registry, signals  # noqa: F401  (model changes via django-auditlog; failed logins)

        registry.register_models()

        from auditlog.models import LogEntry
        from django.db.models.signals import pre_save

        from audit.middleware import log_entry_from_request

        pre_save.connect(log_entry_from_request, sender=LogEntry, dispatch_uid="audit.log_entry_from_request")
