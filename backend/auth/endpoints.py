"""Account endpoints: sign-up, login, token refresh and logout, verification, password reset."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from fastapi_users import exceptions as fu_exceptions
from sqlalchemy import select

from backend.auth import cookies, schemas, service, tokens
from backend.auth.users import CurrentUser, UserManagerDep
from backend.config import get_settings
from backend.db import SessionDep, set_user_context
from backend.errors import BadRequest, NotAuthenticated
from backend.kit import ratelimit
from backend.models import Membership, Tenant
from backend.redis import get_redis

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
me_router = APIRouter(prefix="/api/v1", tags=["auth"])


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _limit(request: Request, action: str, account: str, limit: int) -> None:
    window = get_settings().rate_limit_window_seconds
    redis = get_redis()
    await ratelimit.hit(
        redis, f"{action}:ip:{client_ip(request)}", limit=limit, window_seconds=window
    )
    await ratelimit.hit(
        redis, f"{action}:account:{account.lower()}", limit=limit, window_seconds=window
    )


def _token_response(pair: tokens.TokenPair) -> schemas.TokenResponse:
    return schemas.TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/register", status_code=status.HTTP_201_CREATED, response_model=schemas.UserRead)
async def register(
    body: schemas.SignUp, request: Request, session: SessionDep, manager: UserManagerDep
) -> schemas.UserRead:
    """Create an account. A verification email is sent; login works before verification."""
    await _limit(request, "signup", body.email, get_settings().signup_rate_limit)
    user = await service.create_user(
        session, email=body.email, password=body.password, full_name=body.full_name, manager=manager
    )
    return schemas.UserRead.model_validate(user)


@router.post("/login", response_model=schemas.TokenResponse)
async def login(
    body: schemas.Login, request: Request, session: SessionDep, manager: UserManagerDep
) -> schemas.TokenResponse:
    """Exchange email and password for a 15-minute access token and a 7-day refresh token."""
    await _limit(request, "login", body.email, get_settings().login_rate_limit)
    user = await service.authenticate(manager, body.email, body.password)
    return _token_response(await tokens.issue_token_pair(session, user))


@router.post("/token", response_model=schemas.TokenResponse, include_in_schema=True)
async def login_form(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: SessionDep,
    manager: UserManagerDep,
) -> schemas.TokenResponse:
    """The same as /login, as an OAuth2 password form (used by the interactive API docs)."""
    await _limit(request, "login", form.username, get_settings().login_rate_limit)
    user = await service.authenticate(manager, form.username, form.password)
    return _token_response(await tokens.issue_token_pair(session, user))


@router.post("/refresh", response_model=schemas.TokenResponse)
async def refresh(body: schemas.RefreshRequest, session: SessionDep) -> schemas.TokenResponse:
    """Rotate a refresh token. A token can be used once; reusing one revokes its whole login."""
    return _token_response(await tokens.rotate_refresh_token(session, body.refresh_token))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: schemas.RefreshRequest, session: SessionDep) -> None:
    """Revoke the refresh token and every token rotated from the same login."""
    await tokens.revoke_refresh_token(session, body.refresh_token)


@router.post("/session", response_model=schemas.AccessTokenResponse)
async def open_session(
    body: schemas.Login,
    request: Request,
    response: Response,
    session: SessionDep,
    manager: UserManagerDep,
) -> schemas.AccessTokenResponse:
    """Log in from the dashboard: the access token in the body, the refresh token in an
    httpOnly, Secure, SameSite=Strict cookie that only /api/v1/auth/session receives."""
    cookies.check_csrf(request)
    await _limit(request, "login", body.email, get_settings().login_rate_limit)
    user = await service.authenticate(manager, body.email, body.password)
    return _cookie_session(response, await tokens.issue_token_pair(session, user))


RefreshCookie = Annotated[str | None, Cookie(alias=cookies.REFRESH_COOKIE, max_length=200)]


@router.post("/session/refresh", response_model=schemas.AccessTokenResponse)
async def refresh_session(
    request: Request, response: Response, session: SessionDep, refresh_token: RefreshCookie = None
) -> schemas.AccessTokenResponse:
    """Rotate the cookie's refresh token (the same single-use rule as /refresh); needs the
    X-Parley-CSRF header and, when the browser sends one, Parley's own Origin."""
    cookies.check_csrf(request)
    if not refresh_token:
        raise NotAuthenticated("There is no session cookie. Log in again.")
    return _cookie_session(response, await tokens.rotate_refresh_token(session, refresh_token))


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
async def close_session(
    request: Request, response: Response, session: SessionDep, refresh_token: RefreshCookie = None
) -> None:
    """Log out from the dashboard: revoke the cookie's login and clear the cookie."""
    cookies.check_csrf(request)
    if refresh_token:
        await tokens.revoke_refresh_token(session, refresh_token)
    cookies.clear_refresh_cookie(response)


def _cookie_session(response: Response, pair: tokens.TokenPair) -> schemas.AccessTokenResponse:
    cookies.set_refresh_cookie(response, pair.refresh_token)
    return schemas.AccessTokenResponse(access_token=pair.access_token, expires_in=pair.expires_in)


@router.post("/verify/request", status_code=status.HTTP_202_ACCEPTED)
async def request_verification(
    body: schemas.EmailRequest, request: Request, manager: UserManagerDep
) -> dict[str, str]:
    """Send a new verification email. Answers the same whether or not the account exists."""
    await _limit(request, "verify", body.email, get_settings().signup_rate_limit)
    try:
        user = await manager.get_by_email(body.email)
        await manager.request_verify(user, request)
    except (
        fu_exceptions.UserNotExists,
        fu_exceptions.UserInactive,
        fu_exceptions.UserAlreadyVerified,
    ):
        pass
    return {"status": "If the account exists and is not verified, an email is on its way."}


@router.post("/verify", response_model=schemas.UserRead)
async def verify(
    body: schemas.VerifyRequest, request: Request, manager: UserManagerDep
) -> schemas.UserRead:
    """Confirm an email address with the token from the verification email."""
    try:
        user = await manager.verify(body.token, request)
    except (fu_exceptions.InvalidVerifyToken, fu_exceptions.UserNotExists) as exc:
        raise BadRequest("The verification token is invalid or has expired.") from exc
    except fu_exceptions.UserAlreadyVerified as exc:
        raise BadRequest("This email address is already verified.") from exc
    return schemas.UserRead.model_validate(user)


@router.post("/forgot-password", status_code=status.HTTP_202_ACCEPTED)
async def forgot_password(
    body: schemas.EmailRequest, request: Request, manager: UserManagerDep
) -> dict[str, str]:
    """Email a password-reset link. Answers the same whether or not the account exists."""
    await _limit(request, "forgot", body.email, get_settings().login_rate_limit)
    try:
        user = await manager.get_by_email(body.email)
        await manager.forgot_password(user, request)
    except (fu_exceptions.UserNotExists, fu_exceptions.UserInactive):
        pass
    return {"status": "If the account exists, a reset email is on its way."}


@router.post("/reset-password", status_code=status.HTTP_204_NO_CONTENT)
async def reset_password(
    body: schemas.ResetPasswordRequest, request: Request, manager: UserManagerDep
) -> None:
    """Set a new password with the token from the reset email."""
    try:
        await manager.reset_password(body.token, body.password, request)
    except (fu_exceptions.InvalidResetPasswordToken, fu_exceptions.UserNotExists) as exc:
        raise BadRequest("The reset token is invalid or has expired.") from exc
    except fu_exceptions.UserInactive as exc:
        raise BadRequest("The account is not active.") from exc
    except fu_exceptions.InvalidPasswordException as exc:
        raise service.password_refused(exc) from exc


@me_router.get("/me", response_model=schemas.Me)
async def me(user: CurrentUser, session: SessionDep) -> schemas.Me:
    """The signed-in account and the workspaces it belongs to."""
    await set_user_context(session, user.id)
    rows = await session.execute(
        select(Tenant.id, Tenant.name, Tenant.slug, Membership.role)
        .join(Membership, Membership.tenant_id == Tenant.id)
        .where(Membership.user_id == user.id)
        .order_by(Tenant.name)
    )
    workspaces = [
        schemas.WorkspaceRef(tenant_id=tid, name=name, slug=slug, role=role.value)
        for tid, name, slug, role in rows
    ]
    return schemas.Me(**schemas.UserRead.model_validate(user).model_dump(), workspaces=workspaces)
