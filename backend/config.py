"""Parley's settings: one pydantic-settings class, read from PARLEY_* variables and `.env`.

Every field is documented in docs/configuration.md; a test keeps the two in step.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class EmailBackend(StrEnum):
    console = "console"
    smtp = "smtp"


class TelegramMode(StrEnum):
    webhook = "webhook"
    polling = "polling"


class PlanLimits(BaseModel):
    """What a plan allows: stored knowledge, and replies and model tokens per calendar month."""

    max_documents: int = Field(ge=0)
    max_chunks: int = Field(ge=0)
    monthly_replies: int = Field(default=1_000, ge=0)
    monthly_tokens: int = Field(default=2_000_000, ge=0)


DEFAULT_PLANS: dict[str, PlanLimits] = {
    "free": PlanLimits(
        max_documents=100, max_chunks=20_000, monthly_replies=1_000, monthly_tokens=2_000_000
    ),
    "pro": PlanLimits(
        max_documents=5_000, max_chunks=500_000, monthly_replies=20_000, monthly_tokens=50_000_000
    ),
    "business": PlanLimits(
        max_documents=50_000,
        max_chunks=5_000_000,
        monthly_replies=200_000,
        monthly_tokens=500_000_000,
    ),
}


class ModelPrice(BaseModel):
    """A model's price in micro-units (millionths of the billing currency) per million tokens."""

    prompt: int = Field(default=0, ge=0)
    completion: int = Field(default=0, ge=0)
    embedding: int = Field(default=0, ge=0)


# USD list prices of OpenAI's models; the local and offline ones cost nothing.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(prompt=150_000, completion=600_000),
    "gpt-4o": ModelPrice(prompt=2_500_000, completion=10_000_000),
    "gpt-4.1-mini": ModelPrice(prompt=400_000, completion=1_600_000),
    "openai:text-embedding-3-small": ModelPrice(embedding=20_000),
    "openai:text-embedding-3-large": ModelPrice(embedding=130_000),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PARLEY_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Environment = Environment.development
    # Where the dashboard links (invitations, password reset) point to.
    public_url: str = "http://127.0.0.1:8000"
    data_dir: Path = Path(".data")

    # The app's own connection: a role that owns no tables and cannot bypass row-level security.
    database_url: SecretStr | None = None
    # The owner's connection, used by migrations and to create the app role.
    database_admin_url: SecretStr | None = None
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_max_overflow: int = Field(default=10, ge=0, le=200)
    # A round trip per checkout; off, a connection the server closed is still caught for free.
    database_pool_pre_ping: bool = False
    redis_url: SecretStr | None = None

    secret_key: SecretStr = SecretStr("change-me-in-production-parley-dev-secret")
    access_token_minutes: int = Field(default=15, ge=1)
    refresh_token_days: int = Field(default=7, ge=1)
    invitation_days: int = Field(default=7, ge=1)

    login_rate_limit: int = Field(default=10, ge=1, description="attempts per window")
    signup_rate_limit: int = Field(default=5, ge=1, description="attempts per window")
    rate_limit_window_seconds: int = Field(default=60, ge=1)

    max_request_body_bytes: int = Field(default=1_048_576, ge=1024)

    email_backend: EmailBackend = EmailBackend.console
    email_from: str = "Parley <no-reply@parley.local>"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1)
    log_level: str = "INFO"
    log_json: bool = True

    worker_poll_delay_seconds: float = Field(default=0.05, gt=0, le=5)
    worker_max_jobs: int = Field(default=20, ge=1)
    worker_shutdown_grace_seconds: int = Field(default=30, ge=0)

    # Plans and their limits, as JSON: {"free": {"max_documents": 100, "max_chunks": 20000}, ...}
    plans: dict[str, PlanLimits] = Field(default_factory=lambda: dict(DEFAULT_PLANS))

    # Knowledge: storage of originals, uploads and fetching.
    storage_dir: Path | None = None  # default: <data_dir>/storage
    upload_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    fetch_allow_loopback: bool = False
    fetch_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    fetch_max_page_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    crawl_max_pages: int = Field(default=500, ge=1, le=100_000)
    crawl_max_depth: int = Field(default=5, ge=0, le=20)
    fetch_user_agent: str = "ParleyBot/0.1 (+https://parley.example/bot)"

    # Embeddings and retrieval.
    embedding_model: str = "local:all-MiniLM-L6-v2"
    model_cache_dir: Path | None = None  # default: <data_dir>/models
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_embedding_model: str = "text-embedding-3-small"
    openai_embedding_dimension: int = Field(default=1536, ge=1, le=16000)
    # Knowledge bases up to this many chunks are searched exactly (no index, always k results).
    exact_search_max_chunks: int = Field(default=2_000, ge=0)
    hnsw_ef_search: int = Field(default=200, ge=10, le=1000)
    # How long a process trusts a knowledge base's counted size when choosing exact or HNSW.
    search_size_cache_seconds: float = Field(default=60.0, ge=0, le=86_400)
    # Hybrid search: how much a full-text rank counts in the fusion against a vector rank.
    hybrid_text_weight: float = Field(default=0.25, ge=0, le=10)
    # Query vectors remembered per process, per workspace and model (0 turns it off).
    query_embedding_cache_size: int = Field(default=1024, ge=0, le=1_000_000)
    ingest_job_timeout_seconds: int = Field(default=300, ge=10)
    # Fernet keys (comma-separated, newest first) that encrypt tenants' own provider keys.
    encryption_keys: SecretStr | None = None

    # Replies. openai_base_url and openai_api_key above serve chat models too.
    openai_chat_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    llm_retry_base_delay_seconds: float = Field(default=0.5, ge=0, le=60)
    llm_retry_max_delay_seconds: float = Field(default=8.0, ge=0, le=300)
    llm_breaker_failures: int = Field(default=5, ge=1, le=1000)
    llm_breaker_reset_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Token budgets of a prompt: retrieved passages, and the recent history that precedes it.
    context_token_budget: int = Field(default=2_500, ge=100, le=200_000)
    history_token_budget: int = Field(default=1_500, ge=0, le=200_000)
    # A reservation not settled within this time (its process died) is released by a sweep.
    quota_reservation_ttl_seconds: int = Field(default=900, ge=60)
    # OpenAI-compatible replies: each API process holds the plan's replies this long in advance
    # (a lease; 0: each reply holds its own, one database round trip before the model call),
    # at most quota_lease_max_replies at once.
    quota_lease_seconds: float = Field(default=5.0, ge=0, le=300)
    quota_lease_max_replies: int = Field(default=64, ge=1, le=10_000)
    # How long an API process keeps an API key's and assistant's entry for OpenAI-compatible
    # replies (0: not at all). A change drops it at once; this bounds a missed notification.
    chat_entry_cache_seconds: float = Field(default=30.0, ge=0, le=3600)
    # The chat widget.
    widget_dir: Path | None = None  # default: widget/dist of the source tree
    # The dashboard's built files, served at /app.
    web_dir: Path | None = None  # default: web/dist of the source tree
    widget_token_minutes: int = Field(default=60, ge=1, le=24 * 60)
    widget_heartbeat_seconds: float = Field(default=25.0, gt=0, le=300)
    widget_replay_events: int = Field(default=2000, ge=10, le=100_000)
    widget_replay_hours: int = Field(default=24, ge=1, le=24 * 30)
    widget_visitor_messages_per_minute: int = Field(default=20, ge=1)
    widget_ip_messages_per_minute: int = Field(default=60, ge=1)
    widget_max_message_chars: int = Field(default=2000, ge=1, le=8000)
    # Telegram bots.
    telegram_mode: TelegramMode = TelegramMode.webhook
    telegram_api_base: str = "https://api.telegram.org"
    # Where Telegram sends updates: <this>/telegram/webhook/<bot id>; default: public_url.
    telegram_webhook_base_url: str | None = None
    telegram_chat_messages_per_second: float = Field(default=1.0, gt=0, le=30)
    telegram_bot_messages_per_second: float = Field(default=30.0, gt=0, le=1000)
    telegram_group_messages_per_minute: float = Field(default=20.0, gt=0, le=600)
    telegram_send_attempts: int = Field(default=4, ge=1, le=20)
    telegram_poll_timeout_seconds: int = Field(default=25, ge=1, le=50)
    # Prices per model, as JSON: {"gpt-4o-mini": {"prompt": 150000, "completion": 600000}}.
    prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_PRICES))

    @property
    def resolved_storage_dir(self) -> Path:
        return self.storage_dir or self.data_dir / "storage"

    @property
    def resolved_widget_dir(self) -> Path:
        return self.widget_dir or Path(__file__).resolve().parent.parent / "widget" / "dist"

    @property
    def resolved_web_dir(self) -> Path:
        return self.web_dir or Path(__file__).resolve().parent.parent / "web" / "dist"

    @property
    def resolved_model_cache_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.production


@lru_cache
def get_settings() -> Settings:
    return Settings()
