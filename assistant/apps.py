from django.apps import AppConfig


class AssistantConfig(AppConfig):
    name = "assistant"
    verbose_name = "Assistant"

    def ready(self) -> None:
        from assistant.surfaces.openai.format import edge_error_body
        from django.conf import settings

        from config.http.edge_paths import allow_larger_bodies, answer_errors_as
        from config.startup import serving_duty, stopping_duty

        serving_duty(_start_serving_duties)
        stopping_duty(_close_mcp_connections)
        # The server's edge answers OpenAI clients (a body over the limit…) in OpenAI's error shape.
        answer_errors_as(r"/v1/.*", edge_error_body)
        # Conversations with images (base64 data URLs) are larger than other requests.
        allow_larger_bodies(r"/v1/(chat/completions|responses)", settings.V1_CHAT_MAX_BODY_BYTES)


def _start_serving_duties(loop) -> None:
    from assistant.runs.decisions import approval_expiry_sweeper
    from assistant.runs.sweeps import stale_turn_sweeper
    from assistant.tools.sandbox import sandbox_check_at_startup
    from assistant.tools.threads import tool_executor

    loop.create_task(stale_turn_sweeper(), name="assistant-stale-turn-sweeper")
    loop.create_task(approval_expiry_sweeper(), name="assistant-approval-expiry-sweeper")
    # Probes bubblewrap once (a short subprocess, off the loop, on the tools' threads: the default
    # executor is the rest of the process's) and warns if run_shell can't be offered.
    loop.run_in_executor(tool_executor(), sandbox_check_at_startup)


async def _close_mcp_connections() -> None:
    # Warm MCP connections (assistant/tools/mcp_pool.py): stdio servers stopped, remote sessions ended,
    # before the process exits; within the 10 s `manage.py run` gives a worker after SIGTERM.
    from assistant.tools.mcp_pool import mcp_pool_close

    await mcp_pool_close(timeout=7)
