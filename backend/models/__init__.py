"""All ORM models, imported here so that Alembic and the tests see every table."""

from backend.models.accounts import RefreshToken, User
from backend.models.apikeys import ApiKey
from backend.models.assistants import (
    Assistant,
    AssistantKnowledgeBase,
    Channel,
    Conversation,
    ConversationStatus,
    Message,
    MessageFeedback,
    MessageRole,
    MessageStatus,
    ModelProvider,
    Rating,
    UnansweredQuestion,
)
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
from backend.models.telegram import (
    BotStatus,
    GroupMode,
    TelegramBot,
    TelegramChat,
    TelegramDeadLetter,
    TelegramUser,
)
from backend.models.tenancy import Invitation, Membership, Role, Tenant
from backend.models.usage import (
    QuotaCounter,
    QuotaReservation,
    UsageKind,
    UsageOutcome,
    UsageRecord,
)

__all__ = [
    "ApiKey",
    "Assistant",
    "AssistantKnowledgeBase",
    "AuditEvent",
    "Base",
    "BotStatus",
    "Channel",
    "Chunk",
    "ChunkEmbedding",
    "Conversation",
    "ConversationStatus",
    "Document",
    "DocumentStatus",
    "GroupMode",
    "Invitation",
    "KnowledgeBase",
    "Membership",
    "Message",
    "MessageFeedback",
    "MessageRole",
    "MessageStatus",
    "ModelProvider",
    "QuotaCounter",
    "QuotaReservation",
    "Rating",
    "RefreshToken",
    "Role",
    "Source",
    "SourceKind",
    "SourceSchedule",
    "TelegramBot",
    "TelegramChat",
    "TelegramDeadLetter",
    "TelegramUser",
    "Tenant",
    "TenantEmbeddingSettings",
    "UnansweredQuestion",
    "UsageKind",
    "UsageOutcome",
    "UsageRecord",
    "User",
]
