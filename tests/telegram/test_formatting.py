"""Answers as Telegram HTML: escaping, Markdown conversion, citations, and cutting into messages."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from backend.telegram.formatting import (
    TELEGRAM_LIMIT,
    escape,
    split_message,
    to_telegram_html,
    utf16_length,
)
from tests.standins.telegram_api import parse_html

CITATIONS = [
    {
        "number": 1,
        "title": "Refunds & returns",
        "url": "https://help.example.com/refunds?lang=en&v=2",
        "heading_path": ["Policies", "Refunds"],
    },
    {"number": 2, "title": "Internal notes <draft>", "url": None, "heading_path": []},
]
ENTITY = re.compile(r"&(?:amp|lt|gt|quot|#\d+|#x[0-9a-fA-F]+);")


class _TagBalance(HTMLParser):
    """Checks that every tag opened is closed, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")


def assert_balanced(chunk: str) -> None:
    parser = _TagBalance()
    parser.feed(chunk)
    parser.close()
    assert parser.errors == []
    assert parser.open == []


def assert_whole_entities(chunk: str) -> None:
    """Every `&` in `chunk` starts a whole entity: no cut fell inside one."""
    for match in re.finditer("&", chunk):
        assert ENTITY.match(chunk, match.start()), chunk[match.start() : match.start() + 8]


def visible(html: str) -> str:
    return parse_html(html)[0]


# Escaping and conversion


def test_escape_plain_text() -> None:
    assert escape("Text only, for now: <b> & co >") == "Text only, for now: &lt;b&gt; &amp; co &gt;"


@pytest.mark.parametrize(
    ("hostile", "shown"),
    [
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        ("I typed <b>bold</b> myself", "I typed <b>bold</b> myself"),
        ("Fish & chips &amp; peas", "Fish & chips &amp; peas"),
        ('<a href="javascript:alert(1)">click</a>', '<a href="javascript:alert(1)">click</a>'),
    ],
)
def test_hostile_text_is_shown_as_typed(hostile: str, shown: str) -> None:
    html = to_telegram_html(hostile)
    assert "<script" not in html
    assert "<a " not in html
    text, entities = parse_html(html)
    assert text == shown
    assert entities == []


def test_markdown_link_to_javascript_is_not_a_link() -> None:
    html = to_telegram_html("Click [here](javascript:alert(document.cookie)) now")
    assert "<a" not in html
    assert visible(html) == "Click here (javascript:alert(document.cookie)) now"


@pytest.mark.parametrize("url", ["data:text/html,<b>x</b>", "/relative/path", "ftp://x.org/f"])
def test_only_web_addresses_become_links(url: str) -> None:
    html = to_telegram_html(f"see [the file]({url})")
    assert "<a" not in html
    assert url in visible(html)


def test_emphasis_code_and_links_convert() -> None:
    html = to_telegram_html(
        "Some **bold**, *italic*, _also italic_, ~~gone~~ and `a < b` with "
        "[docs](https://docs.example.com/a?x=1&y=2) and snake_case_names."
    )
    assert html == (
        "Some <b>bold</b>, <i>italic</i>, <i>also italic</i>, <s>gone</s> and "
        '<code>a &lt; b</code> with <a href="https://docs.example.com/a?x=1&amp;y=2">docs</a> '
        "and snake_case_names."
    )
    text, entities = parse_html(html)
    assert text.startswith("Some bold, italic, also italic, gone and a < b with docs and")
    link = next(e for e in entities if e["type"] == "text_link")
    assert link["url"] == "https://docs.example.com/a?x=1&y=2"


def test_bold_italic_and_emphasis_inside_emphasis() -> None:
    html = to_telegram_html("***both*** and **bold with *italic* inside**")
    assert html == "<b><i>both</i></b> and <b>bold with <i>italic</i> inside</b>"


def test_asterisks_that_are_not_emphasis_stay() -> None:
    assert visible(to_telegram_html("2 * 3 * 4 = 24, and a*b")) == "2 * 3 * 4 = 24, and a*b"


def test_code_block_becomes_pre_and_is_not_converted() -> None:
    answer = "Run this:\n\n```python\nif a < b and **c**:\n    print('[1] & done')\n```\nThen stop."
    html = to_telegram_html(answer, CITATIONS)
    assert (
        '<pre><code class="language-python">if a &lt; b and **c**:\n'
        "    print('[1] &amp; done')</code></pre>"
    ) in html
    text, entities = parse_html(html)
    assert {"type": "pre", "offset": text.index("if a"), "length": 43, "language": "python"} in (
        entities
    )


def test_unclosed_code_fence_runs_to_the_end() -> None:
    html = to_telegram_html("```\nx = 1 < 2")
    assert html == "<pre>x = 1 &lt; 2</pre>"


def test_headings_lists_and_quotes() -> None:
    answer = "## Steps\n\n- first *thing*\n  - detail\n1. one\n2) two\n\n> quoted **words**"
    html = to_telegram_html(answer)
    assert html == (
        "<b>Steps</b>\n\n• first <i>thing</i>\n  ◦ detail\n1. one\n2. two\n\n"
        "<blockquote>quoted <b>words</b></blockquote>"
    )
    parse_html(html)


def test_citation_markers_link_to_their_sources() -> None:
    html = to_telegram_html("Refunds take 5 days [1]. Ask support [2]. See [1, 2].", CITATIONS)
    body, sources = html.split("\n\n<b>Sources</b>\n")
    assert body == (
        'Refunds take 5 days <a href="https://help.example.com/refunds?lang=en&amp;v=2">[1]</a>. '
        "Ask support [2]. "
        'See [<a href="https://help.example.com/refunds?lang=en&amp;v=2">1</a>, 2].'
    )
    assert sources.splitlines() == [
        '[1] <a href="https://help.example.com/refunds?lang=en&amp;v=2">Refunds &amp; returns</a>'
        " — Policies › Refunds",
        "[2] Internal notes &lt;draft&gt;",
    ]
    text, _ = parse_html(html)
    assert text.endswith(
        "Sources\n[1] Refunds & returns — Policies › Refunds\n[2] Internal notes <draft>"
    )


def test_citation_with_a_hostile_url_is_not_linked() -> None:
    citations = [{"number": 1, "title": "x", "url": 'javascript:alert("1")', "heading_path": []}]
    html = to_telegram_html("Claim [1].", citations)
    assert "<a" not in html
    assert html == "Claim [1].\n\n<b>Sources</b>\n[1] x"


def test_quotes_in_urls_cannot_break_out_of_href() -> None:
    html = to_telegram_html('[x](https://e.com/"onclick="y)', [])
    assert 'href="https://e.com/&quot;onclick=&quot;y"' in html
    _, entities = parse_html(html)
    assert entities[0]["url"] == 'https://e.com/"onclick="y'


def test_no_answer_and_no_sources_is_empty() -> None:
    assert to_telegram_html("   ") == ""


# Lengths


def test_utf16_length_counts_astral_characters_twice() -> None:
    assert utf16_length("abc") == 3
    assert utf16_length("é") == 1
    assert utf16_length("😀") == 2
    assert utf16_length("👍🏽") == 4


# Splitting


def test_short_message_is_one_chunk() -> None:
    assert split_message("<b>hi</b> there") == ["<b>hi</b> there"]


def test_paragraphs_split_at_paragraph_ends() -> None:
    paragraphs = [f"Paragraph {n}. " + "Some words to read here. " * 16 for n in range(25)]
    answer = "\n\n".join(p.strip() for p in paragraphs)
    assert len(answer) > 10_000
    html = to_telegram_html(answer)
    chunks = split_message(html)
    assert len(chunks) == 3
    assert all(utf16_length(chunk) <= TELEGRAM_LIMIT for chunk in chunks)
    assert all(chunk.startswith("Paragraph") and chunk.endswith(".") for chunk in chunks)
    assert "\n\n".join(chunks) == html


def test_one_long_paragraph_splits_at_sentence_ends() -> None:
    paragraph = " ".join(f"Sentence number {n} says a little more." for n in range(240))
    assert 9_000 <= len(paragraph) <= 10_000
    chunks = split_message(paragraph)
    assert len(chunks) == 3
    assert all(utf16_length(chunk) <= TELEGRAM_LIMIT for chunk in chunks)
    assert all(chunk.startswith("Sentence") and chunk.endswith("more.") for chunk in chunks)
    assert " ".join(chunks) == paragraph


def test_a_sentence_without_stops_splits_between_words() -> None:
    words = " ".join(f"word{n}" for n in range(1_500))
    chunks = split_message(words, limit=1_000)
    assert all(len(chunk) <= 1_000 for chunk in chunks)
    assert " ".join(chunks) == words


def test_a_word_longer_than_a_message_is_cut_hard() -> None:
    word = "x" * 5_000
    assert split_message(word) == ["x" * 4_096, "x" * 904]


def test_astral_characters_count_two_units() -> None:
    text = "😀" * 3_000
    chunks = split_message(text)
    assert [utf16_length(chunk) for chunk in chunks] == [4_096, 1_904]
    assert "".join(chunks) == text


def test_glyphs_with_joiners_are_not_cut_apart() -> None:
    family = "👨\u200d👩\u200d👧"  # one glyph, 8 UTF-16 units
    chunks = split_message(family * 10, limit=20)
    assert all(utf16_length(chunk) <= 20 for chunk in chunks)
    assert all(chunk.startswith("👨") and chunk.endswith("👧") for chunk in chunks)
    assert "".join(chunks) == family * 10


def test_tags_open_at_a_cut_are_closed_and_reopened() -> None:
    inner = " ".join(f"Point {n} is worth stating." for n in range(300))
    html = f'Intro <b>bold <a href="https://e.com/?a=1&amp;b=2">{inner}</a> tail</b> end'
    chunks = split_message(html, limit=2_000)
    assert len(chunks) > 3
    for chunk in chunks:
        assert utf16_length(chunk) <= 2_000
        assert_balanced(chunk)
        parse_html(chunk)  # and Telegram would accept it
    assert chunks[1].startswith('<b><a href="https://e.com/?a=1&amp;b=2">Point')
    assert chunks[0].endswith("</a></b>")
    assert " ".join(visible(chunk) for chunk in chunks) == visible(html)


def test_code_block_cut_keeps_indentation() -> None:
    code = "\n".join(f"    value_{n} = compute({n})" for n in range(300))
    html = to_telegram_html(f"```python\n{code}\n```")
    chunks = split_message(html, limit=1_500)
    assert len(chunks) > 4
    for chunk in chunks:
        assert_balanced(chunk)
        assert chunk.startswith('<pre><code class="language-python">    value_')
    assert "\n".join(visible(chunk) for chunk in chunks) == code


def test_no_cut_inside_an_entity() -> None:
    html = escape("a" * 4_094 + "&&&&" + " b" * 10)
    chunks = split_message(html)
    assert len(chunks) == 2
    for chunk in chunks:
        assert_whole_entities(chunk)
        assert utf16_length(chunk) <= TELEGRAM_LIMIT
    assert "".join(chunks) == html


def test_no_cut_inside_a_tag() -> None:
    link = '<a href="https://example.com/a-long-address-with-no-spaces">x</a>'
    html = "a" * 4_080 + link
    chunks = split_message(html)
    assert chunks[0] == "a" * 4_080
    assert chunks[1] == link


def test_a_long_answer_with_citations_fits_and_parses() -> None:
    answer = "\n\n".join(
        f"**Part {n}.** Refunds are *usually* quick [1], with `codes` & <notes> [2]. " * 6
        for n in range(20)
    )
    chunks = split_message(to_telegram_html(answer, CITATIONS))
    assert len(chunks) >= 3
    for chunk in chunks:
        assert utf16_length(chunk) <= TELEGRAM_LIMIT
        assert_balanced(chunk)
        assert_whole_entities(chunk)
        parse_html(chunk)
    assert chunks[-1].endswith("[2] Internal notes &lt;draft&gt;")
