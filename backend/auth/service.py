"""Account operations shared by the API and the CLI."""

from __future__ import annotations

from fastapi.security import OAuth2PasswordRequestForm
from fastapi_users import exceptions as fu_exceptions
from fastapi_users import schemas as fu_schemas
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.auth.users import UserDatabase, UserManager
from backend.errors import Conflict, NotAuthenticated, ValidationFailed
from backend.models import User


class _UserCreate(fu_schemas.BaseUserCreate):
    full_name: str | None = None


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    full_name: str | None = None,
    verified: bool = False,
    manager: UserManager | None = None,
) -> User:
    """Create an account. Unverified accounts get a verification email (queued after commit)."""
    manager = manager or UserManager(UserDatabase(session, User))
    payload = _UserCreate(email=email, password=password, full_name=full_name, is_verified=verified)
    try:
        # safe=not verified: only trusted callers (the CLI) may create pre-verified accounts.
        return await manager.create(payload, safe=not verified)
    except fu_exceptions.UserAlreadyExists as exc:
        raise Conflict("An account with this email already exists.") from exc
    except fu_exceptions.InvalidPasswordException as exc:
        raise password_refused(exc) from exc


def password_refused(exc: fu_exceptions.InvalidPasswordException) -> ValidationFailed:
    return ValidationFailed(
        str(exc.reason), fields=[{"field": "password", "message": str(exc.reason)}]
    )


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    user: User | None = await session.scalar(
        select(User).where(func.lower(User.email) == email.lower())
    )
    return user


async def authenticate(manager: UserManager, email: str, password: str) -> User:
    form = OAuth2PasswordRequestForm(username=email, password=password)
    user = await manager.authenticate(form)
    if user is None or not user.is_active:
        raise NotAuthenticated("The email or password is wrong.")
    return user
