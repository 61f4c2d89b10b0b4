from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    name = "lifecycle"
    verbose_name = "Data lifecycle"

    def ready(self) -> None:
        from config.startup import serving_duty

        serving_duty(_start_daily_purge)


def _start_daily_purge(loop) -> None:
    from django.conf import settings

    from lifecycle.purge import daily_purger

    if settings.PURGE_ON_SERVE:
        loop.create_task(daily_purger(), name="lifecycle-daily-purge")
