"""The demo model (`python3 dev.py demo-model`) runs on its own, on a fixed port, and the real SDK streams
its echo: a way to try the chat page without a model key."""

from __future__ import annotations

import subprocess
import sys

import anthropic
from django.conf import settings


def test_the_demo_model_runs_on_its_port_and_streams_an_echo(unused_tcp_port):
    process = subprocess.Popen(
        [sys.executable, "-m", "config.testing.demo_model", "--port", str(unused_tcp_port)],
        cwd=settings.BASE_DIR, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base_url = f"http://127.0.0.1:{unused_tcp_port}"
        assert process.stdout.readline().strip() == f"Demo model listening on {base_url}. Start Conduit against it with:"
        client = anthropic.Anthropic(api_key="demo", base_url=base_url, max_retries=0)
        deltas = []
        with client.messages.stream(
            model="any", max_tokens=100, messages=[{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}]
        ) as stream:
            deltas = list(stream.text_stream)
            final = stream.get_final_message()
        assert len(deltas) > 5  # streamed word by word
        assert "".join(deltas).startswith("You said: **Hi there**\n\nI am Conduit's demo model")
        assert final.stop_reason == "end_turn" and final.model == "conduit-demo"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
