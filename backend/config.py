"""Parley's settings: one pydantic-settings class, read from PARLEY_* variables and `.env`.

Every field is documented in docs/configuration.md; a test keeps the two in step.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class EmailBackend(StrEnum):
    console = "console"
    smtp = "smtp"


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

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.production


@lru_cache
def get_settings() -> Settings:
    return Settings()
