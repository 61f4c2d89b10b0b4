"""A child process of the race test: runs turns of one user against the fake Messages API until its
budget refuses one. Run with `manage.py shell -c "from usage.tests.race_child import main; main()"`;
RACE_ROLE=setup|run|report, RACE_FAKE_URL, RACE_LIMIT. Prints one JSON line."""

from __future__ import annotations

import asyncio
import json
import os


def setup() -> dict:
    from agents.models import AIAgent, LLMProviderConfig
    from accounts.models import User
    from usage.models import Budget

    user = User.objects.create_user(email="racer@example.com", name="Racer", password="a-long-test-passphrase-42")
    config = LLMProviderConfig.objects.create(
        name="Fake", model="claude-test-1", base_url=os.environ["RACE_FAKE_URL"], api_key="sk-test", max_tokens=64
    )
    AIAgent.objects.create(name="Racer", slug="racer", system_prompt_text="Race.", llm_config=config)
    Budget.objects.create(user=user, monthly_tokens=int(os.environ["RACE_LIMIT"]))
    return {"user_id": user.pk}


async def run() -> dict:
    from asgiref.sync import sync_to_async

    from accounts.models import User
    from assistant import runs

    user = await User.objects.aget(email="racer@example.com")
    ran, refused_midway = 0, 0
    while True:
        try:
            plan = await sync_to_async(runs.turn_begin)(user=user, text="race", agent_slug="racer")
        except runs.TurnRefused as refused:
            assert refused.code == "budget_exceeded", refused.code
            return {"turns": ran, "refused_midway": refused_midway}
        queue: asyncio.Queue = asyncio.Queue()
        runner = runs.TurnRunner(plan, listeners=[queue])
        await asyncio.wait_for(runner.start(), 30)
        frames = [queue.get_nowait() for _ in range(queue.qsize())]
        if frames[-1]["type"] == "error":
            refused_midway += 1
        ran += 1


def report() -> dict:
    from django.db.models import Sum

    from agents.models import Message
    from usage.models import UsageCounter

    counter = UsageCounter.objects.get(user__email="racer@example.com")
    messages = Message.objects.filter(session__owner__email="racer@example.com").aggregate(
        input=Sum("input_tokens"), output=Sum("output_tokens")
    )
    calls = Message.objects.filter(session__owner__email="racer@example.com", role="assistant", status="complete").count()
    return {"counter_tokens": counter.total_tokens, "message_tokens": messages["input"] + messages["output"],
            "calls": calls}  # fmt: skip


def main() -> None:
    role = os.environ["RACE_ROLE"]
    result = setup() if role == "setup" else report() if role == "report" else asyncio.run(run())
    print("RESULT " + json.dumps(result), flush=True)
