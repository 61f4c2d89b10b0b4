from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from agents import signals  # noqa: F401  (removes a deleted session's workspace)
        from agents import versions, workspaces
        from config.http.edge_paths import allow_larger_bodies

        versions.connect()  # every saved agent change becomes an AIAgentVersion
        # Uploads into a session's workspace: bodies up to one file and its envelope, on that path only.
        allow_larger_bodies(workspaces.UPLOAD_PATH_PATTERN, workspaces.upload_body_limit())
