"""Opaque secrets (refresh and invitation tokens, API keys): shown once, stored hashed.

The tokens carry 256 bits of randomness, so one SHA-256 round is enough to store them: a slow
password hash would only make every API request slower without adding protection.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
