"""Tenant API keys for server-to-server calls."""
