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


_READ = frozenset({Permission.tenant_read, Permission.members_read, Permission.knowledge_read})

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.owner: frozenset(Permission),
    Role.admin: frozenset(Permission),
    Role.agent: _READ,
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
    }
)
