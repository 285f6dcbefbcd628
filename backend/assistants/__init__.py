"""Assistants: configuration, conversations, the reply engine and its public APIs."""
