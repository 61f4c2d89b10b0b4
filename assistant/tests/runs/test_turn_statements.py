"""A turn makes a fixed, small number of SQL statements, whatever the catalog and the history hold
(issue 26: 57 per `/v1` turn before). Counted on every thread (the request's lane, the turn writer's),
BEGIN/COMMIT/SAVEPOINT left out (drivers differ in how they send those)."""

from __future__ import annotations

import json

import pytest

from accounts.services import api_key_create
from agents.models import AIAgent, Integration, LLMProviderConfig, PromptTemplate
from config.asgi import application
from config.testing.asgi import asgi_request
from config.testing.fake_openai import Chunks, fake_openai_server
from config.testing.statements import statements_recorded

pytestmark = pytest.mark.django_db(transaction=True)

DATA_STATEMENTS = ("SELECT", "INSERT", "UPDATE", "DELETE")


@pytest.fixture
def gpt(settings):
    settings.OPENAI_MAX_RETRIES = 0
    with fake_openai_server() as server:
        yield server


@pytest.fixture
def key(user, gpt) -> str:
    config = LLMProviderConfig.objects.create(
        name="Org GPT", provider="openai", model="gpt-test", base_url=gpt.base_url, api_key="sk-org"
    )
    prompt = PromptTemplate.objects.create(name="Brief", slug="brief", body="Be brief.")
    agent = AIAgent.objects.create(name="Bench", slug="bench", llm_config=config, system_prompt=prompt)
    # Catalog rows a turn of this agent must not read one by one.
    for number in range(3):
        integration = Integration.objects.create(
            name=f"Unused {number}", provider=f"p{number}", is_active=False, owner=None,
        )
        agent.integrations.add(integration)
    return api_key_create(user=user, name="bench").key


async def chat(key: str, body: dict) -> tuple[int, bytes]:
    answer = await asgi_request(
        application, "POST", "/v1/chat/completions", body=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )  # fmt: skip
    return answer.status, answer.body


def data_statements(statements: list[str]) -> list[str]:
    return [sql for sql in statements if sql.lstrip().split(None, 1)[0].upper() in DATA_STATEMENTS]


async def test_a_chat_completion_makes_a_fixed_number_of_statements(key, gpt):
    gpt.default = Chunks(text=["Hel", "lo", "!"])
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    body = {"model": "bench", "messages": [*history, {"role": "user", "content": "Again"}]}
    assert (await chat(key, body))[0] == 200  # the first turn resolves the agent for this process
    for _ in range(2):
        with statements_recorded() as statements:
            status, answer = await chat(key, body)
        assert status == 200 and json.loads(answer)["choices"][0]["message"]["content"] == "Hello!"
        counted = data_statements(statements)
        # 12 for the turn; one conversation, one session (issue 27): the indexed lookup of the history's
        # conversation, and the new session's conversation recorded when the answer ends.
        assert len(counted) == 14, "\n".join(counted)


async def test_a_changed_agent_is_read_again_once(key, gpt):
    gpt.default = Chunks(text=["Hi"])
    body = {"model": "bench", "messages": [{"role": "user", "content": "Hi"}]}
    await chat(key, body)
    await (await AIAgent.objects.aget(slug="bench")).asave()  # moves the catalog's version
    with statements_recorded() as changed:
        assert (await chat(key, body))[0] == 200
    with statements_recorded() as unchanged:
        assert (await chat(key, body))[0] == 200
    # 12 for the turn, and the new session's conversation recorded (no history: nothing to look up).
    assert len(data_statements(changed)) > len(data_statements(unchanged)) == 13


def test_the_statements_read_a_session_as_the_orm_does(user, agent):
    """session_turn_row and session_messages (written out, not built by the ORM) give what the ORM's own
    queries gave: the session's row with its last seqs and any streaming or awaiting message, and its
    messages in order with their JSON content (the other fields load when read)."""
    from agents.models import Message, UserAgentSession
    from assistant.runs.statements import session_messages, session_turn_row

    session = UserAgentSession.objects.create(owner=user, agent=agent, title="T", custom_properties={"team": "ops"})
    contents = [[{"type": "text", "text": "Hi ☃"}], [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": [1]}}],
                [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}], []]  # fmt: skip
    for seq, (role, status) in enumerate([("user", "complete"), ("assistant", "complete"), ("user", "awaiting"),
                                          ("assistant", "streaming")], start=1):  # fmt: skip
        Message.objects.create(session=session, seq=seq, role=role, status=status, content=contents[seq - 1])
    streaming = Message.objects.get(session=session, status="streaming")
    awaiting = Message.objects.get(session=session, status="awaiting")

    row = session_turn_row(user.pk, session.pk, streaming="streaming", awaiting="awaiting")
    session.refresh_from_db()
    version = session.agent_version_id
    assert row == (session.pk, agent.pk, "T", {"team": "ops"}, version, 4, None, streaming.pk, awaiting.pk)
    assert session_turn_row(user.pk + 1, session.pk, streaming="streaming", awaiting="awaiting") is None

    fields = ("pk", "seq", "role", "status", "content", "text")
    read = session_messages(session.pk)
    expected = list(Message.objects.filter(session=session).order_by("seq").only("seq", "role", "status", "content"))
    assert [[getattr(m, f) for f in fields] for m in read] == [[getattr(m, f) for f in fields] for m in expected]
    assert read[0].get_deferred_fields() == expected[0].get_deferred_fields() and read[0].session_id == session.pk
