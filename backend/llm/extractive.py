"""The offline default: answers quoted from the retrieved passages, with no language model.

Parley answers even with no model API configured. Such an answer opens by saying plainly that
it is quoted from the sources, and quotes up to three passages, best first, each as a Markdown
blockquote ending in its citation marker [n]. From a long passage it quotes the sentences that
share the most words with the question, in their original order, up to about 80 words, so the
excerpt is about what was asked. Words are compared case-insensitively by their first five
letters (a shorter word of four letters or more matches the words it starts), which catches
most plural and case endings in English and Russian; short and very common words are ignored.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncGenerator, Iterator

from backend.llm.tokens import count_message_tokens, count_tokens
from backend.llm.types import ChatRequest, ContextPassage, Finished, StreamEvent, TextDelta

MODEL_NAME = "parley-extractive"
MAX_PASSAGES = 3
EXCERPT_WORDS = 80
WORDS_PER_DELTA = 3
MIN_WORD_LENGTH = 3
STEM_LENGTH = 5

OPENINGS = {
    "en": "This answer is quoted directly from the sources:",
    "ru": "Этот ответ дословно процитирован из источников:",
}
# Words too common to say what a question is about.
_ENGLISH_STOPWORDS = """
    about after all also and any are because been before but can could did does each for from
    had has have her his how into its may more most not now off our out over she should some
    such than that the their them then there these they this those through too very was were
    what when where which while who whom why will with would you your
"""
_RUSSIAN_STOPWORDS = """
    без был была были было для его если есть еще или как какая какие какой когда мне можно
    над нас нет них нужно она они под при про так также тоже только уже чем через что чтобы
    эта эти это этот
"""
_STOPWORDS = frozenset(_ENGLISH_STOPWORDS.split() + _RUSSIAN_STOPWORDS.split())
# Blank lines, and line breaks before list items and table rows; other line breaks may be where
# a source wrapped a sentence.
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n|\n(?=\s*(?:(?:[-*+\u2022]|\d+[.)])\s|\|))")
# After . ! ? or an ellipsis (maybe closed by a quote or bracket) and a space, or right after a
# CJK full stop, exclamation or question mark.
_SENTENCE_END = re.compile(
    r"(?:(?<=[.!?\u2026])|(?<=[.!?\u2026][\"'\u201d\u2019)\]]))\s+|(?<=[\u3002\uff01\uff1f])"
)
_SOURCE_MARKER = re.compile(r"\s*\[\d+\]")  # the source's own footnote marks, not Parley's
_WORD = re.compile(r"\w+")
_BLOCK_START = re.compile(r"^(?:([#>*+-])|(\d+)([.)]))")


class ExtractiveProvider:
    """Answers quoted from the passages; never fails and needs no network."""

    name: str = "extractive"
    is_llm: bool = False
    model: str = MODEL_NAME

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        prompt_tokens = count_message_tokens(request.messages)
        answer = compose_answer(request.question, request.passages, request.language)
        for text in _word_groups(answer, WORDS_PER_DELTA):
            yield TextDelta(text)
        yield Finished(
            prompt_tokens=prompt_tokens,
            completion_tokens=count_tokens(answer),
            finish_reason="stop",
        )

    async def aclose(self) -> None:
        return None


def compose_answer(question: str, passages: list[ContextPassage], language: str = "en") -> str:
    """The quoted answer, or "" when no passage has text."""
    question_words = content_words(question)
    quotes: list[str] = []
    for passage in passages:
        if len(quotes) == MAX_PASSAGES:
            break
        excerpt = relevant_excerpt(passage.text, question_words)
        if excerpt:
            quotes.append(f"> {_escape_block_start(excerpt)} [{passage.number}]")
    if not quotes:
        return ""
    return "\n\n".join([opening(language), *quotes])


def opening(language: str) -> str:
    """The line that says the answer is quoted, in `language` ("ru", "ru-RU"...), else English."""
    primary = language.strip().lower().replace("_", "-").split("-")[0]
    return OPENINGS.get(primary, OPENINGS["en"])


def relevant_excerpt(text: str, question_words: set[str], max_words: int = EXCERPT_WORDS) -> str:
    """The passage's sentences that best match the question, within `max_words`, on one line.

    `question_words` come from `content_words`. Left-out stretches between quoted sentences are
    marked with "…".
    """
    sentences = split_sentences(text)
    lengths = [len(sentence.split()) for sentence in sentences]
    if sum(lengths) <= max_words:
        return " ".join(sentences)
    scores = [_overlap(question_words, content_words(sentence)) for sentence in sentences]
    matched = any(scores)
    if matched:
        # Only sentences about the question, best first; ties go to the earlier sentence.
        ranked = sorted((i for i, score in enumerate(scores) if score), key=lambda i: -scores[i])
    else:
        ranked = list(range(len(sentences)))  # nothing matches: the passage's opening
    if lengths[ranked[0]] > max_words:  # even the best sentence is too long: its first words
        return " ".join(sentences[ranked[0]].split()[:max_words]) + " …"
    chosen: list[int] = []
    used = 0
    for i in ranked:
        if used + lengths[i] <= max_words:
            chosen.append(i)
            used += lengths[i]
        elif not matched:
            break  # the opening stays one stretch of text
    return _join_in_order(sentences, sorted(chosen))


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, each on one line; paragraphs and list items end a sentence too."""
    text = _SOURCE_MARKER.sub("", text)
    sentences: list[str] = []
    for block in _PARAGRAPH_BREAK.split(text):
        for sentence in _SENTENCE_END.split(block):
            words = sentence.split()
            if words:
                sentences.append(" ".join(words))
    return sentences


def _join_in_order(sentences: list[str], chosen: list[int]) -> str:
    parts = [sentences[chosen[0]]]
    for previous, current in itertools.pairwise(chosen):
        parts.append("… " + sentences[current] if current > previous + 1 else sentences[current])
    return " ".join(parts)


def content_words(text: str) -> set[str]:
    """The words of `text` that can say what it is about: lowercased, no short or common ones."""
    words = _WORD.findall(text.lower().replace("ё", "\N{CYRILLIC SMALL LETTER IE}"))
    return {word for word in words if len(word) >= MIN_WORD_LENGTH and word not in _STOPWORDS}


def _overlap(question_words: set[str], sentence_words: set[str]) -> int:
    """How many of the question's words the sentence has, in some form."""
    return sum(
        1 for word in question_words if any(_same_word(word, other) for other in sentence_words)
    )


def _same_word(a: str, b: str) -> bool:
    # Words that start alike are taken for forms of one word ("refund", "refunds"; "work",
    # "working"): the first STEM_LENGTH letters, or a whole shorter word of four letters or more.
    if a == b:
        return True
    prefix = min(len(a), len(b), STEM_LENGTH)
    return prefix >= 4 and a[:prefix] == b[:prefix]


def _escape_block_start(text: str) -> str:
    # A quote that starts like a heading or a list item would render as one inside the quote.
    match = _BLOCK_START.match(text)
    if match is None:
        return text
    if match.group(1):
        return "\\" + text
    return f"{match.group(2)}\\{text[match.end(2) :]}"


def _word_groups(text: str, size: int) -> Iterator[str]:
    words = re.findall(r"\S+\s*", text)
    for start in range(0, len(words), size):
        yield "".join(words[start : start + size])
