"""Accounts: sign-up, login, email verification, password reset, and JWT + refresh tokens."""
