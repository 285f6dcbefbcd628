"""Outgoing email through a pluggable sender (console by default, SMTP by setting)."""
