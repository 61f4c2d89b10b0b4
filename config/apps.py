from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Site-wide pieces: the `run` command, health, errors, request ids."""

    name = "config"
    label = "config"
    verbose_name = "Conduit"
