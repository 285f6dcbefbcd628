"""Loopback servers that stand in for outside services in tests, speaking their wire protocols."""
