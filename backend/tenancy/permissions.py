"""What each role, and each API-key scope, may do."""

from __future__ import annotations

from enum import StrEnum

from backend.models import Role


class Permission(StrEnum):
    tenant_read = "tenant:read"
    tenant_manage = "tenant:manage"
    members_read = "members:read"
    members_manage = "members:manage"
    api_keys_manage = "api_keys:manage"
    audit_read = "audit:read"
    knowledge_read = "knowledge:read"
    knowledge_write = "knowledge:write"
    assistants_read = "assistants:read"
    assistants_write = "assistants:write"
    # Talk to assistants: create conversations, send messages, give feedback.
    chat = "chat"
    conversations_read = "conversations:read"
    usage_read = "usage:read"
    channels_read = "channels:read"
    channels_manage = "channels:manage"


_READ = frozenset(
    {
        Permission.tenant_read,
        Permission.members_read,
        Permission.knowledge_read,
        Permission.assistants_read,
        Permission.conversations_read,
        Permission.usage_read,
        Permission.channels_read,
    }
)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.owner: frozenset(Permission),
    Role.admin: frozenset(Permission),
    # Agents answer people: they may talk to assistants, e.g. to try an answer.
    Role.agent: _READ | {Permission.chat},
    Role.viewer: _READ,
}

# Scopes an API key may carry. Managing members and keys, and reading the audit log, stay
# with people (owners and admins).
API_KEY_SCOPES: frozenset[Permission] = frozenset(
    {
        Permission.tenant_read,
        Permission.members_read,
        Permission.knowledge_read,
        Permission.knowledge_write,
        Permission.assistants_read,
        Permission.assistants_write,
        Permission.chat,
        Permission.conversations_read,
        Permission.usage_read,
        Permission.channels_read,
        Permission.channels_manage,
    }
)
