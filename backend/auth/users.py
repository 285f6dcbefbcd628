"""fastapi-users wiring: the user store, the user manager and the access-token strategy."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi_users import BaseUserManager, FastAPIUsers, InvalidPasswordException, UUIDIDMixin
from fastapi_users import schemas as fu_schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users.exceptions import UserAlreadyExists
from fastapi_users_db_sqlalchemy import SQLAlchemyUserDatabase
from sqlalchemy.exc import IntegrityError

from backend.config import get_settings
from backend.db import SessionDep
from backend.jobs import enqueue
from backend.kit.logcontext import bind_request_fields
from backend.models import User

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128


class UserDatabase(SQLAlchemyUserDatabase[User, uuid.UUID]):
    """The fastapi-users store, changed to flush: the request's transaction commits."""

    async def create(self, create_dict: dict[str, Any]) -> User:
        user = User(**create_dict)
        try:
            # A concurrent sign-up with the same email loses at the unique index, not with a 500.
            async with self.session.begin_nested():
                self.session.add(user)
                await self.session.flush()
        except IntegrityError as exc:
            raise UserAlreadyExists() from exc
        await self.session.refresh(user)
        return user

    async def update(self, user: User, update_dict: dict[str, Any]) -> User:
        for key, value in update_dict.items():
            setattr(user, key, value)
        self.session.add(user)
        await self.session.flush()
        return user

    async def delete(self, user: User) -> None:
        await self.session.delete(user)
        await self.session.flush()


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    def __init__(self, user_db: UserDatabase) -> None:
        super().__init__(user_db)
        secret = get_settings().secret_key.get_secret_value()
        self.reset_password_token_secret = secret
        self.verification_token_secret = secret

    async def validate_password(
        self, password: str, user: fu_schemas.BaseUserCreate | User
    ) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidPasswordException(
                f"The password must be at least {MIN_PASSWORD_LENGTH} characters long."
            )
        if len(password) > MAX_PASSWORD_LENGTH:
            raise InvalidPasswordException(
                f"The password must be at most {MAX_PASSWORD_LENGTH} characters long."
            )
        if password.lower() == str(user.email).lower():
            raise InvalidPasswordException("The password must not be the email address.")

    async def on_after_register(self, user: User, request: Request | None = None) -> None:
        if not user.is_verified:
            await self.request_verify(user, request)

    async def on_after_request_verify(
        self, user: User, token: str, request: Request | None = None
    ) -> None:
        link = f"{get_settings().public_url}/app/verify?token={token}"
        enqueue(
            "send_email",
            user.email,
            "Confirm your email for Parley",
            f"Welcome to Parley. Confirm your email address by opening this link:\n{link}\n\n"
            f"Or send this token to POST /api/v1/auth/verify: {token}",
        )

    async def on_after_forgot_password(
        self, user: User, token: str, request: Request | None = None
    ) -> None:
        link = f"{get_settings().public_url}/app/reset-password?token={token}"
        enqueue(
            "send_email",
            user.email,
            "Reset your Parley password",
            f"Someone asked to reset the password of this Parley account.\n"
            f"If it was you, open this link within an hour:\n{link}\n\n"
            f"Or send this token to POST /api/v1/auth/reset-password: {token}\n"
            f"If it was not you, ignore this email.",
        )


async def get_user_db(session: SessionDep) -> AsyncIterator[UserDatabase]:
    yield UserDatabase(session, User)


async def get_user_manager(
    user_db: Annotated[UserDatabase, Depends(get_user_db)],
) -> AsyncIterator[UserManager]:
    yield UserManager(user_db)


UserManagerDep = Annotated[UserManager, Depends(get_user_manager)]

bearer_transport = BearerTransport(tokenUrl="/api/v1/auth/token")


@lru_cache
def _access_token_strategy() -> JWTStrategy[User, uuid.UUID]:
    settings = get_settings()
    return JWTStrategy(
        secret=settings.secret_key.get_secret_value(),
        lifetime_seconds=settings.access_token_minutes * 60,
    )


async def access_token_strategy() -> JWTStrategy[User, uuid.UUID]:
    # An async dependency: a plain function would be run in the thread pool on every request.
    return _access_token_strategy()


def get_access_token_strategy() -> JWTStrategy[User, uuid.UUID]:
    return _access_token_strategy()


auth_backend = AuthenticationBackend(
    name="jwt", transport=bearer_transport, get_strategy=access_token_strategy
)
fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])

current_active_user = fastapi_users.current_user(active=True)
optional_active_user = fastapi_users.current_user(active=True, optional=True)


async def _current_user_in_logs(user: Annotated[User, Depends(current_active_user)]) -> User:
    bind_request_fields(user_id=str(user.id))
    return user


CurrentUser = Annotated[User, Depends(_current_user_in_logs)]
OptionalUser = Annotated[User | None, Depends(optional_active_user)]
