"""Token counting with the offline cl100k_base table."""

from __future__ import annotations

import pytest

from backend.llm import ChatMessage, count_message_tokens, count_tokens, truncate_to_tokens
from backend.llm.tokens import load_encoding, message_token_bound


def test_counts_match_openais_cl100k_base() -> None:
    # Token ids published for cl100k_base: the offline table is OpenAI's, not a look-alike.
    assert load_encoding().encode_ordinary("hello world") == [15339, 1917]
    assert load_encoding().encode_ordinary("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert count_tokens("hello world") == 2
    assert count_tokens("The quick brown fox jumps over the lazy dog.") == 10
    assert count_tokens("") == 0


def test_special_token_markers_count_as_plain_text() -> None:
    assert count_tokens("<|endoftext|>") > 1


def test_messages_add_the_chat_formats_overhead() -> None:
    messages = [
        ChatMessage("system", "You are a helpful assistant."),
        ChatMessage("user", "hello world"),
    ]

    # 3 per message + its role (1 token each) + its content (6 and 2), + 3 priming the reply.
    assert count_message_tokens(messages) == (3 + 1 + 6) + (3 + 1 + 2) + 3
    assert count_message_tokens([]) == 3


def test_truncation_keeps_a_prefix_within_the_limit() -> None:
    text = "Parley answers questions from your own documents, in your widget and in Telegram. " * 5
    total = count_tokens(text)

    for limit in (1, 7, 20, total - 1):
        head = truncate_to_tokens(text, limit)
        assert text.startswith(head)
        assert 0 < count_tokens(head) <= limit

    assert truncate_to_tokens(text, total) == text
    assert truncate_to_tokens(text, 10_000) == text
    assert truncate_to_tokens(text, 0) == ""


@pytest.mark.parametrize("text", ["Возврат денег за подписку 🙂 — 中文字符测试 ✓✓✓", "😀" * 12])
def test_truncation_never_splits_a_character(text: str) -> None:
    for limit in range(1, count_tokens(text) + 1):
        head = truncate_to_tokens(text, limit)
        assert text.startswith(head)
        assert "\ufffd" not in head
        assert count_tokens(head) <= limit


@pytest.mark.parametrize(
    "question",
    [
        "hello world",
        "Grüße aus Köln",
        "東京の天気は？",
        "🙂🙃 emoji",
        "<|endoftext|> marker",
        "  \n\t ",
    ],
)
def test_the_bound_holds_the_count_without_tokenizing_the_question(question: str) -> None:
    messages = [
        ChatMessage("system", "You are a helpful assistant."),
        ChatMessage("user", "earlier question"),
        ChatMessage("assistant", "earlier answer"),
        ChatMessage("user", question),
    ]

    exact = count_message_tokens(messages)
    bound = message_token_bound(messages)

    # Every message but the last is counted; the last is bounded by its UTF-8 length.
    assert bound >= exact
    assert bound - exact == len(question.encode("utf-8")) - count_tokens(question)
    assert message_token_bound([]) == count_message_tokens([])
