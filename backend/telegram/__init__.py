"""Telegram bots: each workspace's own bots, their updates and their answers."""
