"""Fixtures of the lifecycle tests: a directory of exports per test, and a user seeded with a row in
every table that can point at a user and a file in every directory Conduit writes."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from auditlog.context import set_actor
from django.contrib.admin.models import CHANGE
from django.contrib.admin.models import LogEntry as AdminLogEntry
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone

from accounts.models import User
from accounts.services import api_key_create, token_pair_issue
from agents.models import AIAgent, Integration, LLMProviderConfig, Message, UserAgentSession
from agents.services import agent_create, message_append, prompt_create, session_create
from agents.versions import agent_version_record
from agents.workspaces import workspace_ensure
from assistant.models import Approval, ClientSessionAlias, StoredResponse, TurnEvent
from audit.models import AuditEvent
from connections.models import Connection, OAuthClient, OAuthState
from lifecycle.models import Export
from orgproxy.models import ClientSession
from usage.models import Budget
from usage.services import usage_add

SECRET_API_KEY = "sk-ant-lifecycle-secret-0123456789abcdef"
SECRET_CREDENTIAL = "ghp_lifecycle_credential_fedcba9876543210"
SECRET_ACCESS_TOKEN = "access-token-lifecycle-5a5a5a5a5a5a"


@pytest.fixture(autouse=True)
def exports_dir(settings):
    root = Path(tempfile.mkdtemp(prefix="conduit-exports-"))
    settings.EXPORTS_DIR = root
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def staff_client(make_user) -> Client:
    staff = make_user(email="staff@example.com", name="Staff Member", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    client.staff = staff
    return client


@dataclass
class Seeded:
    user: User
    session: UserAgentSession
    agent: AIAgent
    org_agent: AIAgent
    workspace: Path
    export_file: Path
    messages: list[Message] = field(default_factory=list)


def old(days: int):
    return timezone.now() - timedelta(days=days)


@pytest.fixture
def org_agent(db) -> AIAgent:
    config = LLMProviderConfig.objects.create(name="org model", model="claude-test")
    return AIAgent.objects.create(name="Helper", slug="helper", llm_config=config)


@pytest.fixture
def seed(org_agent, make_user, exports_dir):
    """seed(**user_fields) -> Seeded: the user has a row in every table that can name a user."""

    def make(*, staff: User | None = None, **fields) -> Seeded:
        fields.setdefault("email", "erin.erasable@example.com")
        fields.setdefault("name", "Erin Erasable")
        user = make_user(**fields)
        user.groups.add(Group.objects.get_or_create(name="team")[0])
        token_pair_issue(user=user)
        with set_actor(user):  # django-auditlog rows where they are the actor
            api_key_create(user=user, name="laptop")
            config = LLMProviderConfig.objects.create(name="mine", owner=user, api_key=SECRET_API_KEY)
            integration = Integration.objects.create(name="gh", provider="github", owner=user,
                                                     credentials={"token": SECRET_CREDENTIAL})  # fmt: skip
            prompt = prompt_create(owner=user, created_by=user, name="My prompt", slug="my-prompt",
                                   body=f"Answer as {user.name}.", visibility="organization")  # fmt: skip
            agent = agent_create(owner=user, name="Mine", slug="mine", system_prompt=prompt, llm_config=config)
        agent_version_record(agent_id=agent.pk, note="first", user=user)
        user.user_permissions.add(Permission.objects.get(codename="view_aiagent"))
        # Django admin's own history: what they did there, and what staff did to their account.
        AdminLogEntry.objects.log_actions(user.pk, [agent], CHANGE, change_message="renamed")
        if staff is not None:
            AdminLogEntry.objects.log_actions(staff.pk, [user], CHANGE, change_message=f"fixed {user.name}")
        session = session_create(owner=user, agent=org_agent, title="About my holiday")
        messages = [
            message_append(session=session, role="user", content=f"Hello, I am {user.name}"),
            message_append(session=session, role="assistant", content=[
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "t1", "name": "read_file", "input": {"path": "notes.txt"}},
            ], input_tokens=10, output_tokens=5),  # fmt: skip
        ]
        TurnEvent.objects.create(session=session, seq=1, type="text_delta", data={"text": "Let me look."})
        ClientSessionAlias.objects.create(owner=user, key="claude-session-abc", session=session)
        StoredResponse.objects.create(id="resp_seeded", owner=user, session=session, message=messages[-1],
                                      body={"output_text": f"an answer for {user.name}"})  # fmt: skip
        Approval.objects.create(session=session, message=messages[1], tool_use_id="t1", name="read_file",
                                decided_by=user, status="allowed", expires_at=timezone.now())  # fmt: skip
        workspace = workspace_ensure(session.pk)
        (workspace / "notes.txt").write_text(f"notes of {user.name}")
        (workspace / "sub").mkdir()
        (workspace / "sub" / "deep.txt").write_text("deeper")
        own_session = session_create(owner=user, agent=agent, title="With my own agent")
        message_append(session=own_session, role="user", content="hi")
        usage_add(user_id=user.pk, usage={"input_tokens": 10, "output_tokens": 5}, cost=Decimal("0.5"))
        Budget.objects.create(user=user, monthly_tokens=1000)
        client = OAuthClient.objects.create(integration=integration, issuer="https://as.example", client_id="c",
                                            redirect_uri="https://conduit.example/cb",
                                            authorization_endpoint="https://as.example/a",
                                            token_endpoint="https://as.example/t")  # fmt: skip
        Connection.objects.create(user=user, integration=integration, access_token=SECRET_ACCESS_TOKEN,
                                  connected_at=timezone.now(), client=client)  # fmt: skip
        OAuthState.objects.create(state_hash=f"h{user.pk}", user=user, integration=integration, client=client,
                                  code_verifier="v", resource="https://mcp.example", created_at=timezone.now())  # fmt: skip
        ClientSession.objects.create(session_id=f"session-00000000-0000-4000-8000-{user.pk:012d}", user=user,
                                     upstream_user_id=f"conduit|{user.pk}")  # fmt: skip
        AuditEvent.objects.create(kind=AuditEvent.Kind.TOOL_CALL, actor=user, actor_email=user.email, ip="10.1.2.3",
                                  tool="read_file", input={"path": f"/home/{user.name}"}, approved_by=user,
                                  approved_by_email=user.email)  # fmt: skip
        AuditEvent.objects.create(kind=AuditEvent.Kind.LOGIN_FAILED, actor_email=user.email, ip="10.1.2.3")
        export = Export.objects.create(user=user, requested_by=user, state=Export.State.READY,
                                       file_name=f"seeded-{user.pk}.zip", expires_at=timezone.now() + timedelta(hours=1))  # fmt: skip
        export_file = Path(exports_dir) / export.file_name
        export_file.write_bytes(b"PK")
        return Seeded(user=user, session=session, agent=agent, org_agent=org_agent, workspace=workspace,
                      export_file=export_file, messages=messages)  # fmt: skip

    return make
