"""The offline extractive generator: answers quoted from the passages."""

from __future__ import annotations

import pytest

from backend.llm import (
    ChatProvider,
    ExtractiveProvider,
    Finished,
    TextDelta,
    count_message_tokens,
    count_tokens,
)
from backend.llm.extractive import (
    EXCERPT_WORDS,
    OPENINGS,
    compose_answer,
    content_words,
    relevant_excerpt,
)
from tests.llm.helpers import chat_request, passage, read_stream

FILLER = [
    "Parley was founded to help support teams answer faster.",
    "The dashboard lists every assistant in the workspace.",
    "Widgets can be styled to match the colours of a website.",
    "Telegram bots are connected with a token from BotFather.",
    "Each workspace has its own billing plan and invoices.",
    "Team members can be invited by email from the settings page.",
    "Sources are re-crawled on a schedule that the owner chooses.",
]
REFUND_SENTENCE = "Refunds are paid back within five working days of the request."
REFUND_DETAIL = "A refund goes to the card that paid for the plan."
LONG_PASSAGE = " ".join([*FILLER[:3], REFUND_SENTENCE, *FILLER[3:], REFUND_DETAIL, *FILLER])


def quotes_of(answer: str) -> list[str]:
    return [line for line in answer.split("\n") if line.startswith("> ")]


def test_the_provider_says_what_it_is() -> None:
    provider = ExtractiveProvider()

    assert isinstance(provider, ChatProvider)
    assert (provider.name, provider.is_llm, provider.model) == (
        "extractive",
        False,
        "parley-extractive",
    )


async def test_it_quotes_the_sentences_about_the_question_with_their_marker() -> None:
    assert len(LONG_PASSAGE.split()) > EXCERPT_WORDS
    request = chat_request("How long do refunds take?", [passage(4, LONG_PASSAGE)])

    outcome = await read_stream(ExtractiveProvider(), request)

    assert outcome.error is None
    answer = outcome.text
    assert answer.startswith(OPENINGS["en"])
    [quote] = quotes_of(answer)
    assert quote.endswith(" [4]")
    assert REFUND_SENTENCE in quote
    assert REFUND_DETAIL in quote
    # Its original order is kept, and the unrelated sentences are left out.
    assert quote.index(REFUND_SENTENCE) < quote.index(REFUND_DETAIL)
    assert FILLER[0] not in quote
    assert FILLER[4] not in quote
    assert "…" in quote  # the left-out stretch between the two sentences


def test_a_long_passage_is_trimmed_to_about_eighty_words_at_sentence_boundaries() -> None:
    sentences = [
        f"Sentence number {i} talks about topic {i} at some length here." for i in range(40)
    ]

    excerpt = relevant_excerpt(" ".join(sentences), set())

    assert len(excerpt.split()) <= EXCERPT_WORDS
    assert excerpt.startswith(sentences[0])  # no match: the passage's opening
    assert excerpt.endswith(".")


def test_word_forms_match_but_unrelated_words_do_not() -> None:
    question = content_words("How does refunding work for yearly plans?")
    related = "Yearly plans are refunded in part. The refund works by prorating the days left."
    unrelated = "Cards are charged monthly. Careful readers note the date."
    text = " ".join([unrelated * 6, related, unrelated * 6])

    excerpt = relevant_excerpt(text, question)

    assert excerpt == related


def test_the_best_sentence_is_cut_rather_than_skipped_when_too_long() -> None:
    long_relevant = "Refunds " + " ".join(f"step{i}" for i in range(120)) + "."
    text = f"{long_relevant} A short note. Another short note about refunds."

    excerpt = relevant_excerpt(text, content_words("refunds refund"))

    assert excerpt.startswith("Refunds step0 step1")
    assert excerpt.endswith(" …")


def test_without_a_match_the_opening_is_quoted_without_gaps() -> None:
    sentences = ["Short opening one.", "Short opening two.", " ".join(["long"] * 79) + ".", "Tail."]

    excerpt = relevant_excerpt(" ".join(sentences), content_words("unrelated question"))

    assert excerpt == "Short opening one. Short opening two."


def test_a_single_overlong_sentence_is_cut_at_a_word() -> None:
    sentence = " ".join(f"word{i}" for i in range(300)) + "."

    excerpt = relevant_excerpt(sentence, set())

    assert excerpt.endswith(" …")
    assert len(excerpt.split()) == EXCERPT_WORDS + 1
    assert excerpt.startswith("word0 word1 word2")


def test_a_short_passage_is_quoted_whole_on_one_line() -> None:
    text = "First line of a short passage.\nIt wraps here.\n\nSecond paragraph [12] ends."

    answer = compose_answer("anything", [passage(1, text)])

    assert quotes_of(answer) == [
        "> First line of a short passage. It wraps here. Second paragraph ends. [1]"
    ]


@pytest.mark.parametrize(
    ("language", "opening"),
    [
        ("en", OPENINGS["en"]),
        ("ru", OPENINGS["ru"]),
        ("ru-RU", OPENINGS["ru"]),
        ("RU", OPENINGS["ru"]),
        ("de", OPENINGS["en"]),
        ("", OPENINGS["en"]),
    ],
)
def test_the_opening_says_it_is_quoted_in_the_users_language(language: str, opening: str) -> None:
    answer = compose_answer("refunds", [passage(1, REFUND_SENTENCE)], language)

    assert answer.split("\n")[0] == opening


def test_the_wordings_say_the_answer_is_quoted_from_the_sources() -> None:
    assert "quoted" in OPENINGS["en"]
    assert "sources" in OPENINGS["en"]
    assert "процитирован" in OPENINGS["ru"]
    assert "источников" in OPENINGS["ru"]


async def test_a_russian_question_finds_the_russian_sentence() -> None:
    text = " ".join(
        [
            "Parley поддерживает много языков и каналов для общения покупателей.",
            *[
                f"Это предложение номер {i} про разные настройки рабочего пространства."
                for i in range(8)
            ],
            "Возврат денег происходит в течение пяти рабочих дней после запроса.",
            *[f"Это ещё одно предложение {i} про виджет и внешний вид." for i in range(8)],
        ]
    )
    request = chat_request(
        "Как быстро происходит возврат денег?", [passage(2, text)], language="ru"
    )

    outcome = await read_stream(ExtractiveProvider(), request)

    assert outcome.text.startswith(OPENINGS["ru"])
    [quote] = quotes_of(outcome.text)
    assert "Возврат денег происходит в течение пяти рабочих дней" in quote
    assert quote.endswith("[2]")


def test_at_most_three_passages_are_quoted_in_the_given_order() -> None:
    passages = [passage(number, f"Passage {number} is about refunds.") for number in (7, 2, 9, 4)]

    answer = compose_answer("refunds", passages)

    quotes = quotes_of(answer)
    assert [quote.rsplit(" ", 1)[1] for quote in quotes] == ["[7]", "[2]", "[9]"]


def test_a_quote_that_looks_like_markdown_stays_a_quote() -> None:
    answer = compose_answer("steps", [passage(1, "1. Open the settings."), passage(2, "# Plans")])

    assert quotes_of(answer) == [r"> 1\. Open the settings. [1]", r"> \# Plans [2]"]


async def test_without_passages_it_yields_only_finished() -> None:
    request = chat_request("How long do refunds take?", [])

    events = [event async for event in ExtractiveProvider().stream(request)]

    assert events == [
        Finished(
            prompt_tokens=count_message_tokens(request.messages),
            completion_tokens=0,
            finish_reason="stop",
        )
    ]
    assert compose_answer("x", [passage(1, "   \n ")]) == ""


async def test_it_streams_small_deltas_and_counts_tokens() -> None:
    request = chat_request("How long do refunds take?", [passage(1, LONG_PASSAGE)])

    events = [event async for event in ExtractiveProvider().stream(request)]

    deltas = [event.text for event in events if isinstance(event, TextDelta)]
    answer = compose_answer(request.question, request.passages, request.language)
    assert "".join(deltas) == answer
    assert len(deltas) > 10
    assert all(len(delta.split()) <= 3 for delta in deltas)
    assert events[-1] == Finished(
        prompt_tokens=count_message_tokens(request.messages),
        completion_tokens=count_tokens(answer),
        finish_reason="stop",
    )
