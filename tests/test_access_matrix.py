"""Who may call what: an access matrix over every /api/v1 route of the app.

The routes come from the app's OpenAPI schema, and `CASES` declares for each one whether it is
public, needs a login (but no workspace), or is tenant-scoped with a permission, plus how to
build a valid request. A route without a case fails `test_every_route_has_a_case`, so a new
endpoint cannot ship without saying who may call it.

Tenant A is the workspace under attack: it has an owner, an admin, an agent, a viewer and two
API keys. Tenant B is a neighbour with its own owner and key. Objects named in a path (members,
invitations, API keys) are created fresh in tenant A for every test, so that a request that
changes them cannot disturb another test, and are checked to be untouched after a refusal.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import select

from backend.auth.cookies import CSRF_HEADER, REFRESH_COOKIE
from backend.auth.service import create_user
from backend.auth.users import UserDatabase, UserManager
from backend.db import PendingJob, unit_of_work
from backend.main import create_app
from backend.models import Message, MessageFeedback, Role, TelegramDeadLetter, User
from backend.tenancy.context import TENANT_HEADER
from backend.tenancy.permissions import API_KEY_SCOPES, ROLE_PERMISSIONS, Permission
from tests.factories.accounts import DEFAULT_PASSWORD, Account, make_account
from tests.factories.assistants import ask, create_assistant, open_conversation
from tests.factories.knowledge import add_text, add_url_source, create_kb
from tests.factories.responses import assert_error
from tests.factories.tenancy import add_member
from tests.factories.workspaces import (
    Workspace,
    create_api_key,
    create_invitation,
    jobs_recorded,
    membership_id,
    populated_workspace,
    unique_email,
)
from tests.standins.telegram_api import TelegramStandIn

API_PREFIX = "/api/v1"
OPENAI_PREFIX = "/v1/"  # the OpenAI-compatible API
HTTP_METHODS = {"get", "post", "put", "patch", "delete", "head", "options", "trace"}
PATH_PARAM = re.compile(r"{(\w+)}")


class Access(StrEnum):
    public = "public"  # no login at all
    user = "user"  # a login, but no workspace
    tenant = "tenant"  # a workspace, and a permission in it


@dataclass(frozen=True)
class Payload:
    json: Any = None
    data: dict[str, str] | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    headers: dict[str, str] | None = None  # sent besides the caller's own


# Builds the request body of a case. The actor is the account about to call, when there is one.
Builder = Callable[["Scene", Account | None], Awaitable[Payload]]


async def _no_body(scene: Scene, actor: Account | None) -> Payload:
    return Payload()


def _json(make: Callable[[], dict[str, Any]]) -> Builder:
    async def build(scene: Scene, actor: Account | None) -> Payload:
        return Payload(json=make())

    return build


@dataclass(frozen=True)
class Case:
    access: Access
    ok: int  # the status of a valid request by a caller who may make it
    permission: Permission | None = None
    body: Builder = _no_body

    def __post_init__(self) -> None:
        assert (self.access is Access.tenant) == (self.permission is not None), self


def _token_from_email(jobs: list[PendingJob], to: str) -> str:
    for job in reversed(jobs):
        if job.function == "send_email" and job.args[0] == to:
            for line in str(job.args[2]).splitlines():
                if "send this token to" in line:
                    return line.rsplit(": ", 1)[1].strip()
    raise AssertionError(f"no email with a token was queued for {to}")


async def _login_body(scene: Scene, actor: Account | None) -> Payload:
    account = await make_account()
    return Payload(json={"email": account.email, "password": account.password})


async def _login_form(scene: Scene, actor: Account | None) -> Payload:
    account = await make_account()
    return Payload(data={"username": account.email, "password": account.password})


async def _refresh_body(scene: Scene, actor: Account | None) -> Payload:
    account = await make_account()
    return Payload(json={"refresh_token": account.refresh_token})


async def _session_login_body(scene: Scene, actor: Account | None) -> Payload:
    account = await make_account()
    return Payload(
        json={"email": account.email, "password": account.password}, headers={CSRF_HEADER: "1"}
    )


async def _session_cookie(scene: Scene, actor: Account | None) -> Payload:
    account = await make_account()
    cookie = f"{REFRESH_COOKIE}={account.refresh_token}"
    return Payload(headers={CSRF_HEADER: "1", "Cookie": cookie})


async def _email_body(scene: Scene, actor: Account | None) -> Payload:
    account = await make_account()
    return Payload(json={"email": account.email})


async def _verify_body(scene: Scene, actor: Account | None) -> Payload:
    email = unique_email("unverified")
    async with unit_of_work() as session:
        await create_user(session, email=email, password=DEFAULT_PASSWORD, verified=False)
    return Payload(json={"token": _token_from_email(scene.jobs, email)})


async def _reset_body(scene: Scene, actor: Account | None) -> Payload:
    account = await make_account()
    async with unit_of_work() as session:
        manager = UserManager(UserDatabase(session, User))
        await manager.forgot_password(await manager.get(account.user_id))
    token = _token_from_email(scene.jobs, account.email)
    return Payload(json={"token": token, "password": "a different passphrase"})


async def _accept_body(scene: Scene, actor: Account | None) -> Payload:
    email = actor.email if actor is not None else unique_email("invitee")
    _, token = await create_invitation(scene.client, scene.world.a.owner, email)
    return Payload(json={"token": token})


def _hex() -> str:
    return uuid.uuid4().hex[:10]


async def _upload_body(scene: Scene, actor: Account | None) -> Payload:
    return Payload(files=[("files", ("notes.md", b"# Notes\n\nHello.", "text/markdown"))])


_KB = "/api/v1/knowledge-bases"
_AS = "/api/v1/assistants"
_CONV = "/api/v1/conversations"
_TG = "/api/v1/telegram"


async def _conversation_body(scene: Scene, actor: Account | None) -> Payload:
    assistant = await create_assistant(scene.client, scene.world.a.owner)
    return Payload(json={"assistant_id": assistant["id"]})


async def _bot_body(scene: Scene, actor: Account | None) -> Payload:
    """A bot of the stand-in, to be connected to a new assistant of tenant A."""
    assistant = await create_assistant(scene.client, scene.world.a.owner)
    # Tenant A lives for the whole module: every bot needs a Telegram id of its own.
    info = scene.telegram.add_bot(f"{uuid.uuid4().int % 10**10}:AA{uuid.uuid4().hex}")
    return Payload(json={"token": info.token, "assistant_id": assistant["id"]})


async def _completion_body(scene: Scene, actor: Account | None) -> Payload:
    assistant = await create_assistant(scene.client, scene.world.a.owner)
    question = {"role": "user", "content": f"Hello {_hex()}?"}
    return Payload(json={"model": assistant["id"], "messages": [question]})


CASES: dict[tuple[str, str], Case] = {
    # Accounts: anyone may call these; credentials travel in the body.
    ("POST", "/api/v1/auth/register"): Case(
        Access.public,
        201,
        body=_json(lambda: {"email": unique_email("signup"), "password": DEFAULT_PASSWORD}),
    ),
    ("POST", "/api/v1/auth/login"): Case(Access.public, 200, body=_login_body),
    ("POST", "/api/v1/auth/token"): Case(Access.public, 200, body=_login_form),
    ("POST", "/api/v1/auth/refresh"): Case(Access.public, 200, body=_refresh_body),
    ("POST", "/api/v1/auth/logout"): Case(Access.public, 204, body=_refresh_body),
    ("POST", "/api/v1/auth/session"): Case(Access.public, 200, body=_session_login_body),
    ("POST", "/api/v1/auth/session/refresh"): Case(Access.public, 200, body=_session_cookie),
    ("DELETE", "/api/v1/auth/session"): Case(Access.public, 204, body=_session_cookie),
    ("POST", "/api/v1/auth/verify/request"): Case(Access.public, 202, body=_email_body),
    ("POST", "/api/v1/auth/verify"): Case(Access.public, 200, body=_verify_body),
    ("POST", "/api/v1/auth/forgot-password"): Case(Access.public, 202, body=_email_body),
    ("POST", "/api/v1/auth/reset-password"): Case(Access.public, 204, body=_reset_body),
    # A login, no workspace.
    ("GET", "/api/v1/me"): Case(Access.user, 200),
    ("GET", "/api/v1/tenants"): Case(Access.user, 200),
    ("POST", "/api/v1/tenants"): Case(
        Access.user, 201, body=_json(lambda: {"name": "Matrix", "slug": f"mx-{_hex()}"})
    ),
    ("POST", "/api/v1/invitations/accept"): Case(Access.user, 200, body=_accept_body),
    # The current workspace.
    ("GET", "/api/v1/tenant"): Case(Access.tenant, 200, Permission.tenant_read),
    ("PATCH", "/api/v1/tenant"): Case(
        Access.tenant, 200, Permission.tenant_manage, _json(lambda: {"name": f"Renamed {_hex()}"})
    ),
    ("GET", "/api/v1/members"): Case(Access.tenant, 200, Permission.members_read),
    ("PATCH", "/api/v1/members/{member_id}"): Case(
        Access.tenant, 200, Permission.members_manage, _json(lambda: {"role": "agent"})
    ),
    ("DELETE", "/api/v1/members/{member_id}"): Case(Access.tenant, 204, Permission.members_manage),
    ("GET", "/api/v1/invitations"): Case(Access.tenant, 200, Permission.members_manage),
    ("POST", "/api/v1/invitations"): Case(
        Access.tenant,
        201,
        Permission.members_manage,
        _json(lambda: {"email": unique_email("invitee"), "role": "viewer"}),
    ),
    ("DELETE", "/api/v1/invitations/{invitation_id}"): Case(
        Access.tenant, 204, Permission.members_manage
    ),
    ("GET", "/api/v1/api-keys"): Case(Access.tenant, 200, Permission.api_keys_manage),
    ("POST", "/api/v1/api-keys"): Case(
        Access.tenant,
        201,
        Permission.api_keys_manage,
        _json(lambda: {"name": f"key {_hex()}", "scopes": ["tenant:read"]}),
    ),
    ("DELETE", "/api/v1/api-keys/{key_id}"): Case(Access.tenant, 200, Permission.api_keys_manage),
    ("GET", "/api/v1/audit-log"): Case(Access.tenant, 200, Permission.audit_read),
    # Knowledge bases.
    ("POST", _KB): Case(
        Access.tenant, 201, Permission.knowledge_write, _json(lambda: {"name": f"KB {_hex()}"})
    ),
    ("GET", _KB): Case(Access.tenant, 200, Permission.knowledge_read),
    ("GET", _KB + "/{kb_id}"): Case(Access.tenant, 200, Permission.knowledge_read),
    ("PATCH", _KB + "/{kb_id}"): Case(
        Access.tenant, 200, Permission.knowledge_write, _json(lambda: {"description": _hex()})
    ),
    ("DELETE", _KB + "/{kb_id}"): Case(Access.tenant, 204, Permission.knowledge_write),
    ("POST", _KB + "/{kb_id}/sources"): Case(
        Access.tenant,
        201,
        Permission.knowledge_write,
        _json(lambda: {"kind": "text", "text": f"Some text {_hex()}"}),
    ),
    ("GET", _KB + "/{kb_id}/sources"): Case(Access.tenant, 200, Permission.knowledge_read),
    ("GET", _KB + "/{kb_id}/sources/{source_id}"): Case(
        Access.tenant, 200, Permission.knowledge_read
    ),
    ("PATCH", _KB + "/{kb_id}/sources/{source_id}"): Case(
        Access.tenant, 200, Permission.knowledge_write, _json(lambda: {"sync_interval_minutes": 60})
    ),
    ("POST", _KB + "/{kb_id}/sources/{source_id}/sync"): Case(
        Access.tenant, 202, Permission.knowledge_write
    ),
    ("DELETE", _KB + "/{kb_id}/sources/{source_id}"): Case(
        Access.tenant, 204, Permission.knowledge_write
    ),
    ("POST", _KB + "/{kb_id}/documents"): Case(
        Access.tenant, 202, Permission.knowledge_write, _upload_body
    ),
    ("GET", _KB + "/{kb_id}/documents"): Case(Access.tenant, 200, Permission.knowledge_read),
    ("GET", _KB + "/{kb_id}/documents/{document_id}"): Case(
        Access.tenant, 200, Permission.knowledge_read
    ),
    ("POST", _KB + "/{kb_id}/documents/{document_id}/reprocess"): Case(
        Access.tenant, 202, Permission.knowledge_write
    ),
    ("DELETE", _KB + "/{kb_id}/documents/{document_id}"): Case(
        Access.tenant, 204, Permission.knowledge_write
    ),
    ("POST", _KB + "/{kb_id}/search"): Case(
        Access.tenant, 200, Permission.knowledge_read, _json(lambda: {"query": "hello"})
    ),
    **{
        (method, prefix): case
        for prefix in ("/api/v1/provider-settings", "/api/v1/embedding-settings")
        for method, case in (
            ("GET", Case(Access.tenant, 200, Permission.tenant_manage)),
            (
                "PUT",
                Case(
                    Access.tenant,
                    200,
                    Permission.tenant_manage,
                    _json(lambda: {"openai_base_url": "https://models.example.com/v1"}),
                ),
            ),
            ("DELETE", Case(Access.tenant, 204, Permission.tenant_manage)),
        )
    },
    ("POST", _AS): Case(
        Access.tenant, 201, Permission.assistants_write, _json(lambda: {"name": f"A {_hex()}"})
    ),
    ("GET", _AS): Case(Access.tenant, 200, Permission.assistants_read),
    ("GET", _AS + "/{assistant_id}"): Case(Access.tenant, 200, Permission.assistants_read),
    ("PATCH", _AS + "/{assistant_id}"): Case(
        Access.tenant, 200, Permission.assistants_write, _json(lambda: {"instructions": _hex()})
    ),
    ("DELETE", _AS + "/{assistant_id}"): Case(Access.tenant, 204, Permission.assistants_write),
    ("POST", _AS + "/{assistant_id}/rotate-public-key"): Case(
        Access.tenant, 200, Permission.assistants_write
    ),
    ("GET", _AS + "/{assistant_id}/identity-secret"): Case(
        Access.tenant, 200, Permission.assistants_write
    ),
    ("POST", _AS + "/{assistant_id}/rotate-identity-secret"): Case(
        Access.tenant, 200, Permission.assistants_write
    ),
    ("GET", _AS + "/{assistant_id}/unanswered-questions"): Case(
        Access.tenant, 200, Permission.assistants_read
    ),
    ("POST", _AS + "/{assistant_id}/unanswered-questions/resolve"): Case(
        Access.tenant,
        200,
        Permission.assistants_write,
        _json(lambda: {"question_ids": [str(uuid.uuid4())]}),
    ),
    ("POST", _CONV): Case(Access.tenant, 201, Permission.chat, _conversation_body),
    ("GET", _CONV): Case(Access.tenant, 200, Permission.conversations_read),
    ("GET", _CONV + "/{conversation_id}"): Case(Access.tenant, 200, Permission.conversations_read),
    ("GET", _CONV + "/{conversation_id}/messages"): Case(
        Access.tenant, 200, Permission.conversations_read
    ),
    ("POST", _CONV + "/{conversation_id}/messages"): Case(
        Access.tenant, 200, Permission.chat, _json(lambda: {"content": f"Hello {_hex()}?"})
    ),
    ("PUT", "/api/v1/messages/{message_id}/feedback"): Case(
        Access.tenant, 200, Permission.chat, _json(lambda: {"rating": "up"})
    ),
    ("GET", "/api/v1/usage"): Case(Access.tenant, 200, Permission.usage_read),
    ("POST", _TG + "/bots"): Case(Access.tenant, 201, Permission.channels_manage, _bot_body),
    ("GET", _TG + "/bots"): Case(Access.tenant, 200, Permission.channels_read),
    ("GET", _TG + "/bots/{bot_id}"): Case(Access.tenant, 200, Permission.channels_read),
    ("PATCH", _TG + "/bots/{bot_id}"): Case(
        Access.tenant, 200, Permission.channels_manage, _json(lambda: {"group_mode": "all"})
    ),
    ("DELETE", _TG + "/bots/{bot_id}"): Case(Access.tenant, 204, Permission.channels_manage),
    ("GET", _TG + "/dead-letters"): Case(Access.tenant, 200, Permission.channels_read),
    ("POST", _TG + "/dead-letters/{letter_id}/retry"): Case(
        Access.tenant, 200, Permission.channels_manage
    ),
    ("POST", "/v1/chat/completions"): Case(Access.tenant, 200, Permission.chat, _completion_body),
    ("GET", "/v1/models"): Case(Access.tenant, 200, Permission.assistants_read),
}


def _keys(*accesses: Access, with_object: bool = False) -> list[tuple[str, str]]:
    return [
        key
        for key, case in CASES.items()
        if case.access in accesses and (not with_object or PATH_PARAM.search(key[1]))
    ]


def _id(key: tuple[str, str]) -> str:
    return f"{key[0]} {key[1].removeprefix(API_PREFIX)}"


PUBLIC = _keys(Access.public)
USER = _keys(Access.user)
TENANT = _keys(Access.tenant)
NOT_PUBLIC = _keys(Access.user, Access.tenant)
TENANT_OBJECTS = _keys(Access.tenant, with_object=True)


def _api_routes() -> set[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = create_app().openapi()["paths"]
    return {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith((API_PREFIX + "/", OPENAI_PREFIX))
        for method in operations
        if method in HTTP_METHODS
    }


@dataclass
class World:
    a: Workspace  # the workspace under attack
    b: Workspace  # its neighbour


@pytest.fixture(scope="module")
async def world(app: FastAPI) -> World:
    transport = ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with AsyncClient(transport=transport, base_url="http://parley.test") as http:
        with jobs_recorded():
            a = await populated_workspace(
                http,
                roles=(Role.admin, Role.agent, Role.viewer),
                api_keys={"all-scopes": API_KEY_SCOPES, "tenant-read": [Permission.tenant_read]},
            )
            b = await populated_workspace(http, api_keys={"all-scopes": API_KEY_SCOPES})
    return World(a, b)


@dataclass
class Scene:
    """One test's view of the world, with the tenant-A objects it created for its paths."""

    world: World
    client: AsyncClient
    jobs: list[PendingJob]
    telegram: TelegramStandIn
    created: dict[str, uuid.UUID] = field(default_factory=dict)

    async def url(self, template: str) -> str:
        values = {name: str(await self._fresh(name)) for name in PATH_PARAM.findall(template)}
        return template.format(**values)

    async def _fresh(self, name: str) -> uuid.UUID:
        owner = self.world.a.owner
        if name == "member_id":
            member = await add_member(self.client, owner, Role.viewer)
            object_id = await membership_id(self.client, owner, member)
        elif name == "invitation_id":
            object_id, _ = await create_invitation(self.client, owner)
        elif name == "key_id":
            object_id = (await create_api_key(self.client, owner, [Permission.tenant_read])).id
        elif name == "kb_id":
            object_id = await create_kb(self.client, owner)
        elif name == "source_id":
            object_id = await add_url_source(self.client, owner, self.created["kb_id"])
        elif name == "document_id":
            _, object_id = await add_text(self.client, owner, self.created["kb_id"], _hex())
        elif name == "assistant_id":
            object_id = uuid.UUID((await create_assistant(self.client, owner))["id"])
        elif name == "conversation_id":
            assistant = await create_assistant(self.client, owner)
            object_id = await open_conversation(self.client, owner, assistant["id"])
        elif name == "bot_id":
            body = await _bot_body(self, owner)
            response = await self.client.post(
                f"{_TG}/bots", json=body.json, headers=owner.headers()
            )
            assert response.status_code == 201, response.text
            object_id = uuid.UUID(response.json()["id"])
        elif name == "letter_id":
            object_id = await self._dead_letter()
        elif name == "message_id":
            assistant = await create_assistant(self.client, owner)
            conversation = await open_conversation(self.client, owner, assistant["id"])
            reply = await ask(self.client, owner, conversation, f"Hello {_hex()}?")
            object_id = uuid.UUID(reply["answer"]["id"])
        else:
            raise AssertionError(f"no factory for the path parameter {{{name}}}: add one to Scene")
        self.created[name] = object_id
        return object_id

    async def assert_intact(self) -> None:
        """The objects this test created in tenant A are still there, unchanged."""
        headers = self.world.a.owner.headers()
        for name, object_id in self.created.items():
            if name == "member_id":
                listed = (await self.client.get("/api/v1/members", headers=headers)).json()
                roles = [m["role"] for m in listed if m["id"] == str(object_id)]
                assert roles == ["viewer"], f"member {object_id} was changed: {listed}"
            elif name == "invitation_id":
                listed = (await self.client.get("/api/v1/invitations", headers=headers)).json()
                found = [i for i in listed if i["id"] == str(object_id)]
                assert found, f"invitation {object_id} is gone"
                assert found[0]["revoked_at"] is None, found
            elif name == "key_id":
                page = await self.client.get("/api/v1/api-keys?limit=200", headers=headers)
                found = [k for k in page.json()["items"] if k["id"] == str(object_id)]
                assert found, f"API key {object_id} is gone"
                assert found[0]["revoked_at"] is None, found
            elif name == "assistant_id":
                got = await self.client.get(f"{_AS}/{object_id}", headers=headers)
                assert got.status_code == 200, f"assistant {object_id} is gone: {got.text}"
                assert got.json()["instructions"] == "", got.json()
            elif name == "conversation_id":
                got = await self.client.get(f"{_CONV}/{object_id}/messages", headers=headers)
                assert got.status_code == 200, f"conversation {object_id} is gone: {got.text}"
                assert got.json()["items"] == [], got.json()
            elif name == "message_id":
                await self._assert_message_intact(object_id, headers)
            elif name == "bot_id":
                got = await self.client.get(f"{_TG}/bots/{object_id}", headers=headers)
                assert got.status_code == 200, f"bot {object_id} is gone: {got.text}"
                assert got.json()["group_mode"] == "mention", got.json()
            elif name == "letter_id":
                listed = await self.client.get(f"{_TG}/dead-letters?limit=200", headers=headers)
                ids = [d["id"] for d in listed.json()["items"]]
                assert str(object_id) in ids, f"dead letter {object_id} was resolved or is gone"
            else:
                await self._assert_knowledge_intact(name, object_id, headers)

    async def _dead_letter(self) -> uuid.UUID:
        owner = self.world.a.owner
        body = await _bot_body(self, owner)
        response = await self.client.post(f"{_TG}/bots", json=body.json, headers=owner.headers())
        assert response.status_code == 201, response.text
        async with unit_of_work(tenant_id=self.world.a.tenant_id) as session:
            letter = TelegramDeadLetter(
                tenant_id=self.world.a.tenant_id,
                bot_id=uuid.UUID(response.json()["id"]),
                chat_id=4242,
                html="Hello again.",
                error="Bad Gateway",
                attempts=4,
            )
            session.add(letter)
            await session.flush()
            return letter.id

    async def _assert_message_intact(self, message_id: uuid.UUID, headers: dict[str, str]) -> None:
        async with unit_of_work(tenant_id=self.world.a.tenant_id) as session:
            feedback = await session.scalar(
                select(MessageFeedback).where(MessageFeedback.message_id == message_id)
            )
            exists = await session.get(Message, message_id)
        assert exists is not None, f"message {message_id} is gone"
        assert feedback is None, f"message {message_id} got feedback: {feedback.rating}"

    async def _assert_knowledge_intact(
        self, name: str, object_id: uuid.UUID, headers: dict[str, str]
    ) -> None:
        kb = f"/api/v1/knowledge-bases/{self.created['kb_id']}"
        url = {
            "kb_id": kb,
            "source_id": f"{kb}/sources/{object_id}",
            "document_id": f"{kb}/documents/{object_id}",
        }[name]
        response = await self.client.get(url, headers=headers)
        assert response.status_code == 200, f"{name} {object_id} is gone: {response.text}"
        if name == "source_id":
            assert response.json()["sync_interval_minutes"] is None, response.json()


@pytest.fixture
def scene(
    world: World,
    client: AsyncClient,
    recorded_jobs: list[PendingJob],
    telegram: TelegramStandIn,
) -> Scene:
    return Scene(world=world, client=client, jobs=recorded_jobs, telegram=telegram)


async def _call(
    scene: Scene,
    key: tuple[str, str],
    headers: dict[str, str],
    actor: Account | None = None,
    client: AsyncClient | None = None,
) -> Response:
    method, template = key
    url = await scene.url(template)
    payload = await CASES[key].body(scene, actor)
    return await (client or scene.client).request(
        method,
        url,
        json=payload.json,
        data=payload.data,
        files=payload.files,
        headers={**headers, **(payload.headers or {})},
    )


def _ok(response: Response, case: Case) -> None:
    assert response.status_code == case.ok, (
        f"{response.request.method} {response.request.url.path}: expected {case.ok}, "
        f"got {response.status_code}: {response.text[:500]}"
    )


# --- The matrix covers every route ----------------------------------------------------------


def test_every_route_has_a_case() -> None:
    routes = _api_routes()
    missing = sorted(routes - set(CASES))
    stale = sorted(set(CASES) - routes)
    assert not missing, (
        "These routes have no access case; add them to CASES in tests/test_access_matrix.py "
        f"(public, user or tenant + permission): {missing}"
    )
    assert not stale, f"These CASES name routes the app no longer has: {stale}"


def test_only_owners_and_admins_manage() -> None:
    """The policy the matrix relies on: readers only read; API keys never manage the workspace,
    its members or its keys, and never read the audit log."""
    reads = {
        Permission.tenant_read,
        Permission.members_read,
        Permission.knowledge_read,
        Permission.assistants_read,
        Permission.conversations_read,
        Permission.usage_read,
        Permission.channels_read,
    }
    assert ROLE_PERMISSIONS[Role.viewer] == reads
    # Agents answer people, so they may also talk to assistants, and nothing more.
    assert ROLE_PERMISSIONS[Role.agent] == reads | {Permission.chat}
    for role in (Role.owner, Role.admin):
        assert ROLE_PERMISSIONS[role] == frozenset(Permission), role
    administrative = {
        Permission.tenant_manage,
        Permission.members_manage,
        Permission.api_keys_manage,
        Permission.audit_read,
    }
    assert not API_KEY_SCOPES & administrative


# --- Public and user-level routes -----------------------------------------------------------


@pytest.mark.parametrize("key", PUBLIC, ids=_id)
async def test_public_routes_work_without_a_login(
    scene: Scene, key: tuple[str, str], client_from: Callable[[str], AsyncClient]
) -> None:
    # A client address of its own, so the per-IP limits of the auth routes are not shared.
    n = uuid.uuid4().int
    http = client_from(f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}")
    response = await _call(scene, key, headers={}, client=http)
    _ok(response, CASES[key])


@pytest.mark.parametrize("key", NOT_PUBLIC, ids=_id)
async def test_anonymous_gets_401(scene: Scene, key: tuple[str, str]) -> None:
    # Naming tenant A in the header must not stand in for a login.
    headers = {TENANT_HEADER: str(scene.world.a.tenant_id)}
    response = await _call(scene, key, headers)
    assert_error(response, 401, "not_authenticated")
    await scene.assert_intact()


@pytest.mark.parametrize("key", NOT_PUBLIC, ids=_id)
async def test_401_names_the_bearer_scheme(scene: Scene, key: tuple[str, str]) -> None:
    """RFC 9110: a 401 carries a WWW-Authenticate challenge, here the bearer scheme."""
    response = await _call(scene, key, headers={})
    assert response.status_code == 401, response.text
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer"), dict(
        response.headers
    )


@pytest.mark.parametrize("key", USER, ids=_id)
async def test_user_routes_need_only_a_login(scene: Scene, key: tuple[str, str]) -> None:
    account = await make_account()
    response = await _call(scene, key, account.headers(), actor=account)
    _ok(response, CASES[key])


@pytest.mark.parametrize("key", USER, ids=_id)
async def test_an_api_key_is_not_a_login(scene: Scene, key: tuple[str, str]) -> None:
    key_headers = scene.world.a.api_keys["all-scopes"].headers()
    response = await _call(scene, key, key_headers)
    assert_error(response, 401, "not_authenticated")


# --- Tenant-scoped routes: permissions ------------------------------------------------------

PRINCIPALS = ["owner", "admin", "agent", "viewer", "key:all-scopes", "key:tenant-read"]


def _principal(world: World, name: str) -> tuple[dict[str, str], frozenset[Permission]]:
    """The headers of a principal of tenant A, and what it may do there."""
    if name.startswith("key:"):
        handle = world.a.api_keys[name.removeprefix("key:")]
        return handle.headers(), handle.permissions
    role = Role(name)
    account = world.a.owner if role is Role.owner else world.a.members[role]
    return account.headers(), ROLE_PERMISSIONS[role]


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("key", TENANT, ids=_id)
async def test_permission_decides(scene: Scene, key: tuple[str, str], principal: str) -> None:
    case = CASES[key]
    assert case.permission is not None
    headers, permissions = _principal(scene.world, principal)
    response = await _call(scene, key, headers)
    if case.permission in permissions:
        _ok(response, case)
    else:
        body = assert_error(response, 403, "forbidden")
        assert case.permission.value in body["detail"], (
            f"refused for another reason than the declared {case.permission.value}: {body}"
        )
        await scene.assert_intact()


@pytest.mark.parametrize("key", TENANT, ids=_id)
async def test_tenant_routes_need_a_workspace_header(scene: Scene, key: tuple[str, str]) -> None:
    owner = scene.world.a.owner
    response = await _call(scene, key, {"Authorization": f"Bearer {owner.access_token}"})
    body = assert_error(response, 400, "bad_request")
    assert TENANT_HEADER in body["detail"]
    await scene.assert_intact()


# --- Tenant-scoped routes: isolation --------------------------------------------------------


@pytest.mark.parametrize("key", TENANT_OBJECTS, ids=_id)
async def test_member_of_another_tenant_gets_404_on_its_objects(
    scene: Scene, key: tuple[str, str]
) -> None:
    """Tenant B's owner, acting in B, names tenant A's objects: they do not exist for B."""
    response = await _call(scene, key, scene.world.b.owner.headers())
    assert_error(response, 404, "not_found")
    await scene.assert_intact()


@pytest.mark.parametrize("key", TENANT, ids=_id)
async def test_non_member_naming_the_tenant_gets_404(scene: Scene, key: tuple[str, str]) -> None:
    """Tenant B's owner sends X-Parley-Tenant=A: A is not theirs, and answers as if absent."""
    response = await _call(scene, key, scene.world.b.owner.headers(scene.world.a.tenant_id))
    assert_error(response, 404, "not_found")
    await scene.assert_intact()


@pytest.mark.parametrize("key", TENANT_OBJECTS, ids=_id)
async def test_api_key_of_another_tenant_cannot_reach_objects(
    scene: Scene, key: tuple[str, str]
) -> None:
    """Tenant B's key, even naming tenant A in the header, never reaches A's objects.

    A key that lacks the route's permission is refused before any lookup (403); one that has
    it finds nothing in its own tenant (404). Either way A's object is untouched.
    """
    case = CASES[key]
    handle = scene.world.b.api_keys["all-scopes"]
    headers = {**handle.headers(), TENANT_HEADER: str(scene.world.a.tenant_id)}
    response = await _call(scene, key, headers)
    if case.permission in handle.permissions:
        assert_error(response, 404, "not_found")
    else:
        assert_error(response, 403, "forbidden")
    await scene.assert_intact()


async def test_api_key_ignores_the_tenant_header(scene: Scene) -> None:
    a, b = scene.world.a, scene.world.b
    headers = {**b.api_keys["all-scopes"].headers(), TENANT_HEADER: str(a.tenant_id)}

    tenant = await scene.client.get("/api/v1/tenant", headers=headers)
    assert tenant.status_code == 200, tenant.text
    assert tenant.json()["id"] == str(b.tenant_id)

    members = await scene.client.get("/api/v1/members", headers=headers)
    assert members.status_code == 200, members.text
    seen = {m["user_id"] for m in members.json()}
    assert seen == {str(b.owner.user_id)}
    a_users = {str(a.owner.user_id)} | {str(m.user_id) for m in a.members.values()}
    assert not seen & a_users
