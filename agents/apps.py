from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from agents import signals  # noqa: F401  (removes a deleted session's workspace)
        from agents import versions

        versions.connect()  # every saved agent change becomes an AIAgentVersion
