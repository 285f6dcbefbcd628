"""Tests of the chat-model layer: providers, the circuit breaker, token counting."""
