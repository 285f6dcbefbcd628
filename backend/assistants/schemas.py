"""Request and response bodies of the assistant, conversation and usage endpoints."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints

from backend.kit.text import PlainText
from backend.models import (
    Channel,
    ConversationStatus,
    MessageRole,
    MessageStatus,
    ModelProvider,
    Rating,
)

DEFAULT_FALLBACK = (
    "Sorry, I couldn't find an answer to that in what I know. "
    "Could you rephrase it, or ask a person on our team?"
)
Question = PlainText  # the end user's text: plain, no NUL bytes
LanguageCode = Literal["en", "ru"]


HEX_COLOR = r"^#[0-9a-fA-F]{6}$"
# scheme://host[:port], as browsers send it in Origin: no path, no trailing slash.
ORIGIN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$"


class Appearance(BaseModel):
    """How the widget looks; unset fields take the widget's defaults."""

    model_config = ConfigDict(extra="forbid")

    title: PlainText | None = Field(default=None, max_length=100)
    primary_color: str | None = Field(default=None, pattern=HEX_COLOR)
    text_color: str | None = Field(default=None, pattern=HEX_COLOR)
    position: Literal["right", "left"] | None = None
    avatar_url: HttpUrl | None = None
    launcher_icon: Literal["chat", "help", "message"] | None = None
    greeting: PlainText | None = Field(default=None, max_length=200)


class AssistantFields(BaseModel):
    """The settings shared by create and update; every field optional on update."""

    model_config = ConfigDict(extra="forbid")

    instructions: PlainText | None = Field(
        default=None, max_length=20_000, description="The system prompt"
    )
    provider: ModelProvider | None = Field(
        default=None,
        description="'openai' (or any OpenAI-compatible server), 'offline' (answers quoted from "
        "the sources, no LLM), or 'auto': openai when a key is configured, else offline.",
    )
    model: PlainText | None = Field(
        default=None, max_length=200, description="Chat model; null for the platform default"
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_answer_tokens: int | None = Field(default=None, ge=16, le=16_000)
    knowledge_base_ids: list[uuid.UUID] | None = Field(default=None, max_length=20)
    top_k: int | None = Field(default=None, ge=1, le=20)
    threshold: float | None = Field(
        default=None, ge=0, le=1, description="Minimum similarity of a passage to count"
    )
    welcome_message: PlainText | None = Field(default=None, max_length=2000)
    suggested_questions: list[PlainText] | None = Field(default=None, max_length=10)
    fallback_message: PlainText | None = Field(default=None, min_length=1, max_length=2000)
    language: LanguageCode | None = None
    visitor_daily_message_cap: int | None = Field(
        default=None, ge=1, le=100_000, description="Messages per visitor per day; null: no cap"
    )
    allowed_origins: list[Annotated[str, StringConstraints(pattern=ORIGIN)]] | None = Field(
        default=None,
        max_length=50,
        description="Sites the widget may run on, like 'https://shop.example.com'",
    )
    allow_all_origins: bool | None = Field(
        default=None, description="Let the widget run on any site (an explicit choice)"
    )
    appearance: Appearance | None = None


class AssistantCreate(AssistantFields):
    name: PlainText = Field(min_length=1, max_length=200)


class AssistantUpdate(AssistantFields):
    name: PlainText | None = Field(default=None, min_length=1, max_length=200)


class AssistantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    instructions: str
    provider: ModelProvider
    model: str | None
    temperature: float
    max_answer_tokens: int
    knowledge_base_ids: list[uuid.UUID]
    top_k: int
    threshold: float | None
    welcome_message: str | None
    suggested_questions: list[str]
    fallback_message: str
    language: str
    visitor_daily_message_cap: int | None
    public_key: str
    allowed_origins: list[str]
    allow_all_origins: bool
    appearance: Appearance
    created_at: datetime
    updated_at: datetime


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assistant_id: uuid.UUID
    external_user_id: PlainText | None = Field(
        default=None,
        max_length=200,
        description="Your id for the person talking; per-visitor daily caps count by it",
    )
    title: PlainText | None = Field(default=None, max_length=200)


class ConversationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    assistant_id: uuid.UUID
    channel: Channel
    external_user_id: str | None
    title: str | None
    status: ConversationStatus
    assignee_id: uuid.UUID | None
    last_message_at: datetime | None
    created_at: datetime


class Citation(BaseModel):
    number: int = Field(description="The [n] marker in the answer")
    document_id: uuid.UUID
    title: str | None
    url: str | None
    filename: str | None
    heading_path: list[str]
    page: int | None
    passage: str
    score: float


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: Question = Field(min_length=1, max_length=8000)
    stream: bool = Field(
        default=False,
        description="Answer as server-sent events: 'delta' events, then one 'done' event",
    )


class FeedbackRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    rating: Rating
    comment: str | None
    updated_at: datetime


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    role: MessageRole
    content: str
    status: MessageStatus
    citations: list[dict[str, Any]]
    prompt_tokens: int
    completion_tokens: int
    model: str | None
    latency_ms: int | None
    metadata: dict[str, Any] = Field(validation_alias="meta")
    feedback: FeedbackRead | None = None
    created_at: datetime


class ReplyRead(BaseModel):
    """A question and its answer: what sending a message returns (and SSE's 'done' event)."""

    question: MessageRead
    answer: MessageRead
    usage_id: uuid.UUID | None = Field(description="The ledger row of this reply, if any")
    cost_micros: int = Field(
        default=0, description="What the reply cost, in millionths of the billing currency"
    )


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Rating
    comment: PlainText | None = Field(default=None, max_length=2000)


class UnansweredGroup(BaseModel):
    question: str = Field(description="The group's most recent question")
    count: int
    last_asked_at: datetime
    examples: list[str] = Field(description="Up to 5 distinct wordings")
    question_ids: list[uuid.UUID]


class IdentitySecret(BaseModel):
    identity_secret: str


class ResolveQuestions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)


class ResolvedQuestions(BaseModel):
    resolved: int = Field(description="How many open questions were marked resolved")


class UsageBucket(BaseModel):
    key: str
    replies: int
    prompt_tokens: int
    completion_tokens: int
    embedding_tokens: int
    cost_micros: int


class PeriodUsage(BaseModel):
    plan: str
    period_start: date
    resets_at: datetime
    replies_used: int
    replies_limit: int
    tokens_used: int
    tokens_limit: int


class UsageSummary(BaseModel):
    since: date
    until: date
    by_day: list[UsageBucket]
    by_assistant: list[UsageBucket]
    by_model: list[UsageBucket]
    period: PeriodUsage
