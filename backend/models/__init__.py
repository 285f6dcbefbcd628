"""All ORM models, imported here so that Alembic and the tests see every table."""

from backend.models.accounts import RefreshToken, User
from backend.models.apikeys import ApiKey
from backend.models.audit import AuditEvent
from backend.models.base import Base
from backend.models.tenancy import Invitation, Membership, Role, Tenant

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Base",
    "Invitation",
    "Membership",
    "RefreshToken",
    "Role",
    "Tenant",
    "User",
]
