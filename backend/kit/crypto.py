"""Encryption at rest of secrets tenants give Parley (their own provider keys).

Keys come from PARLEY_ENCRYPTION_KEYS: Fernet keys, comma-separated, newest first. The first
encrypts; every one decrypts, so a key is rotated by putting a new one in front (and
`rotate()` re-encrypts a value under it).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from backend.config import get_settings
from backend.errors import ServiceUnavailable


class SecretsUnavailable(ServiceUnavailable):
    code = "secrets_unavailable"


def _fernet() -> MultiFernet:
    configured = get_settings().encryption_keys
    keys = [k.strip() for k in (configured.get_secret_value() if configured else "").split(",")]
    keys = [k for k in keys if k]
    if not keys:
        raise SecretsUnavailable(
            "Parley is not set up to store secrets: the operator must set PARLEY_ENCRYPTION_KEYS."
        )
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError as exc:
        raise SecretsUnavailable("PARLEY_ENCRYPTION_KEYS holds a malformed key.") from exc


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretsUnavailable(
            "A stored secret cannot be decrypted with PARLEY_ENCRYPTION_KEYS; was a key removed?"
        ) from exc


def rotate(token: str) -> str:
    """`token` re-encrypted under the newest key."""
    return _fernet().rotate(token.encode()).decode()
