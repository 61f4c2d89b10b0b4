from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    """Metrics, traces and structured logs: the series, the /metrics view, the tracer's setup."""

    name = "observability"
    label = "observability"
    verbose_name = "Observability"

    def ready(self) -> None:
        from observability import tracing

        tracing.configure()
