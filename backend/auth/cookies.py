"""The dashboard's browser session: the refresh token in an httpOnly cookie, guarded from CSRF.

The access token never leaves the page's memory; the refresh token lives in a cookie that
scripts cannot read, sent only to /api/v1/auth/session. A cookie is sent by the browser whoever
asks, so every request that uses it must also carry the X-Parley-CSRF header (which a cross-site
form cannot set, and a cross-site script cannot send without a CORS preflight Parley refuses),
and, when the browser says where it comes from, an Origin that is Parley's own.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request, Response

from backend.config import get_settings
from backend.errors import Forbidden

REFRESH_COOKIE = "parley_refresh"
COOKIE_PATH = "/api/v1/auth/session"
CSRF_HEADER = "X-Parley-CSRF"


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_csrf(request: Request) -> None:
    """Refuse a cookie-authenticated request that a page on another site could have sent."""
    if not request.headers.get(CSRF_HEADER):
        raise Forbidden(
            f"The {CSRF_HEADER} header is missing: the session cookie is accepted only from "
            "Parley's dashboard."
        )
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = {_origin_of(get_settings().public_url), _origin_of(str(request.base_url))}
    if origin.lower() not in own:
        raise Forbidden(f"Requests from {origin} may not use the session cookie.")


def set_refresh_cookie(response: Response, refresh_token: str) -> None:
    response.set_cookie(
        REFRESH_COOKIE,
        refresh_token,
        max_age=get_settings().refresh_token_days * 86_400,
        path=COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite="strict",
    )


def clear_refresh_cookie(response: Response) -> None:
    response.delete_cookie(
        REFRESH_COOKIE, path=COOKIE_PATH, secure=True, httponly=True, samesite="strict"
    )
