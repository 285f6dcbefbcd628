"""Tests of the Telegram channel: bots, the formatting of their answers, the Bot API stand-in."""
