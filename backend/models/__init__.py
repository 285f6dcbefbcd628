"""All ORM models, imported here so that Alembic and the tests see every table."""

from backend.models.accounts import RefreshToken, User
from backend.models.apikeys import ApiKey
from backend.models.audit import AuditEvent
from backend.models.base import Base
from backend.models.knowledge import (
    Chunk,
    ChunkEmbedding,
    Document,
    DocumentStatus,
    KnowledgeBase,
    Source,
    SourceKind,
    SourceSchedule,
    TenantEmbeddingSettings,
)
from backend.models.tenancy import Invitation, Membership, Role, Tenant

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Base",
    "Chunk",
    "ChunkEmbedding",
    "Document",
    "DocumentStatus",
    "Invitation",
    "KnowledgeBase",
    "Membership",
    "RefreshToken",
    "Role",
    "Source",
    "SourceKind",
    "SourceSchedule",
    "Tenant",
    "TenantEmbeddingSettings",
    "User",
]
