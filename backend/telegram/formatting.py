"""Assistant answers as Telegram HTML, cut into messages Telegram accepts.

Answers are Markdown-ish text; Telegram's HTML parse mode knows a few tags (<b>, <i>, <s>,
<code>, <pre>, <a href>, <blockquote>) and wants every other `<`, `>` and `&` escaped. A
message holds at most 4,096 UTF-16 code units; counting the HTML source rather than the text
Telegram shows keeps each cut message within the limit whatever the markup costs.
"""

from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

TELEGRAM_LIMIT = 4096

_LINKABLE_SCHEMES = frozenset({"http", "https"})


def escape(text: str) -> str:
    """Plain text for Telegram's HTML parse mode: `&`, `<` and `>` as entities."""
    return html.escape(text, quote=False)


def utf16_length(text: str) -> int:
    """Telegram's measure of text: UTF-16 code units (characters beyond U+FFFF count 2)."""
    return len(text.encode("utf-16-le")) // 2


def to_telegram_html(text: str, citations: Sequence[Mapping[str, Any]] = ()) -> str:
    """The answer as Telegram HTML: everything escaped, Markdown emphasis/code/links converted
    (links only for http/https URLs; others shown as text), citation markers [n] turned into
    links to the citation's URL when it has one, and a short "Sources" list at the end
    (numbered, title linked to URL when present)."""
    links = {
        number: _linkable(citation.get("url"))
        for citation in citations
        if (number := _citation_number(citation)) is not None
    }
    body = _blocks(text.strip(), links)
    sources = _sources(citations)
    if body and sources:
        return f"{body}\n\n{sources}"
    return body or sources


# Blocks: code fences, quotes, headings and list items, line by line.

_FENCE = re.compile(r"^\s*(?P<fence>`{3,}|~{3,})\s*(?P<language>[\w+#.-]*)[^`]*$")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(?P<text>.*?)[\s#]*$")
_QUOTE = re.compile(r"^\s{0,3}>\s?(?P<text>.*)$")
_BULLET = re.compile(r"^(?P<indent>\s*)[-*+•]\s+(?P<text>.*)$")
_NUMBERED = re.compile(r"^(?P<indent>\s*)(?P<number>\d{1,9})[.)]\s+(?P<text>.*)$")
_RULE = re.compile(r"^\s{0,3}([-*_])(?:\s*\1){2,}\s*$")
_LANGUAGE = re.compile(r"^[A-Za-z0-9_+#.-]{1,32}$")


def _blocks(text: str, links: Mapping[int, str | None]) -> str:
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence is not None:
            index = _code_block(lines, index, fence, out)
            continue
        if _QUOTE.match(line):
            quoted: list[str] = []
            while index < len(lines) and (quote := _QUOTE.match(lines[index])):
                quoted.append(_inline(quote["text"], links))
                index += 1
            out.append("<blockquote>" + "\n".join(quoted) + "</blockquote>")
            continue
        out.append(_line(line, links))
        index += 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def _code_block(lines: list[str], start: int, fence: re.Match[str], out: list[str]) -> int:
    """Append the fenced block opened at `start` as <pre>; return the index after it. A fence
    never closed runs to the end of the answer, as Markdown renderers have it."""
    marker = fence["fence"]
    end = start + 1
    while end < len(lines) and not lines[end].strip().startswith(marker):
        end += 1
    code = escape("\n".join(lines[start + 1 : end]))
    language = fence["language"]
    if language and _LANGUAGE.match(language):
        out.append(f'<pre><code class="language-{escape(language)}">{code}</code></pre>')
    else:
        out.append(f"<pre>{code}</pre>")
    return end + 1


def _line(line: str, links: Mapping[int, str | None]) -> str:
    if not line.strip():
        return ""
    if _RULE.match(line):
        return "———"
    if heading := _HEADING.match(line):
        return f"<b>{_inline(heading['text'], links)}</b>"
    if bullet := _BULLET.match(line):
        depth = len(bullet["indent"].expandtabs(4)) // 2
        mark = "•" if depth == 0 else "◦"
        return f"{'  ' * depth}{mark} {_inline(bullet['text'], links)}"
    if numbered := _NUMBERED.match(line):
        depth = len(numbered["indent"].expandtabs(4)) // 2
        return f"{'  ' * depth}{numbered['number']}. {_inline(numbered['text'], links)}"
    return _inline(line.strip(), links)


# Inline: code spans, links, citation markers, emphasis. The leftmost match wins, and at one
# position the earlier alternative: a code span is never looked into, and "[1](url)" is a link.

_INLINE = re.compile(
    r"(?P<code_ticks>`+)(?P<code>.+?)(?P=code_ticks)"
    r"|\[(?P<label>[^\[\]]+)\]\((?P<url>[^()\s]+(?:\([^()\s]*\)[^()\s]*)*)(?:\s+\"[^\"]*\")?\)"
    r"|\[(?P<cites>\d{1,4}(?:\s*,\s*\d{1,4})*)\]"
    r"|\*\*\*(?P<bold_italic>(?!\s).+?(?<!\s))\*\*\*"
    r"|\*\*(?P<bold>(?!\s).+?(?<!\s))\*\*"
    r"|(?<![\w_])__(?P<bold_u>(?!\s).+?(?<!\s))__(?![\w_])"
    r"|~~(?P<strike>(?!\s).+?(?<!\s))~~"
    r"|(?<![\w*])\*(?P<italic>(?![\s*]).+?(?<![\s*]))\*(?![\w*])"
    r"|(?<![\w_])_(?P<italic_u>(?![\s_]).+?(?<![\s_]))_(?![\w_])"
)


def _inline(text: str, links: Mapping[int, str | None], *, in_link: bool = False) -> str:
    out: list[str] = []
    position = 0
    for match in _INLINE.finditer(text):
        out.append(escape(text[position : match.start()]))
        out.append(_inline_match(match, links, in_link=in_link))
        position = match.end()
    out.append(escape(text[position:]))
    return "".join(out)


def _inline_match(match: re.Match[str], links: Mapping[int, str | None], *, in_link: bool) -> str:
    groups = match.groupdict()
    if groups["code"] is not None:
        return f"<code>{escape(groups['code'].strip() or groups['code'])}</code>"
    if groups["label"] is not None:
        return _link(groups["label"], groups["url"], links, in_link=in_link)
    if groups["cites"] is not None:
        numbers = [int(number) for number in re.findall(r"\d+", groups["cites"])]
        if len(numbers) == 1:
            return _citation_mark(numbers[0], f"[{numbers[0]}]", links, in_link=in_link)
        marks = [_citation_mark(n, str(n), links, in_link=in_link) for n in numbers]
        return "[" + ", ".join(marks) + "]"
    if groups["bold_italic"] is not None:
        return f"<b><i>{_inline(groups['bold_italic'], links, in_link=in_link)}</i></b>"
    for name, tag in (("bold", "b"), ("bold_u", "b"), ("strike", "s")):
        if groups[name] is not None:
            return f"<{tag}>{_inline(groups[name], links, in_link=in_link)}</{tag}>"
    inner = groups["italic"] if groups["italic"] is not None else groups["italic_u"]
    return f"<i>{_inline(inner, links, in_link=in_link)}</i>"


def _link(label: str, url: str, links: Mapping[int, str | None], *, in_link: bool) -> str:
    shown = _inline(label, links, in_link=True)
    target = _linkable(url)
    if target is None or in_link:
        # Not a web address (javascript:, data:, a relative path...): the reader sees it, as text.
        return shown if label.strip() == url else f"{shown} ({escape(url)})"
    return f'<a href="{html.escape(target, quote=True)}">{shown}</a>'


def _citation_mark(
    number: int, shown: str, links: Mapping[int, str | None], *, in_link: bool
) -> str:
    url = links.get(number)
    if url is None or in_link:
        return shown
    return f'<a href="{html.escape(url, quote=True)}">{shown}</a>'


def _linkable(url: object) -> str | None:
    """`url` if Telegram may link it: an absolute http(s) address with a host, else None."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in _LINKABLE_SCHEMES or not parts.hostname:
        return None
    return url


def _citation_number(citation: Mapping[str, Any]) -> int | None:
    number = citation.get("number")
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def _sources(citations: Sequence[Mapping[str, Any]]) -> str:
    entries: dict[int, str] = {}
    for citation in citations:
        number = _citation_number(citation)
        if number is None or number in entries:
            continue
        url = _linkable(citation.get("url"))
        title = str(citation.get("title") or "").strip() or url or f"Source {number}"
        shown = escape(title)
        if url is not None:
            shown = f'<a href="{html.escape(url, quote=True)}">{shown}</a>'
        path = [str(part).strip() for part in citation.get("heading_path") or () if str(part)]
        if path:
            shown += " — " + escape(" › ".join(path))
        entries[number] = f"[{number}] {shown}"
    if not entries:
        return ""
    return "<b>Sources</b>\n" + "\n".join(entries[number] for number in sorted(entries))


# Splitting. The HTML is read as pieces: a tag, an entity, or one character. Cuts fall between
# pieces only, so never inside a tag or an entity.

_PIECE = re.compile(
    r"<(?P<closing>/?)(?P<name>[A-Za-z][A-Za-z0-9-]*)(?:\s(?:[^>\"']|\"[^\"]*\"|'[^']*')*)?\s*>"
    r"|&(?:#[0-9]{1,8}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"
)
_SENTENCE_ENDS = frozenset(".!?…。！？")
_CLOSERS = frozenset("\"'”’»)]*_")
_PARAGRAPH, _LINE, _SENTENCE, _WORD = range(4)
_KEEPS_SPACES = frozenset({"pre", "code"})


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    size: int  # UTF-16 code units
    tag: str = ""  # a tag's lower-cased name; "" for text
    closing: bool = False


@dataclass(frozen=True, slots=True)
class _Break:
    end: int  # the chunk ends before this piece...
    resume: int  # ...and the next starts at this one (whitespace between is dropped)
    level: int


def split_message(html: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Telegram HTML cut into messages of at most `limit` UTF-16 code units, at paragraph
    boundaries where possible, else sentence boundaries, else word boundaries, else hard cuts;
    never inside a tag or an entity (&amp;), and every chunk has balanced tags (a tag open at a
    cut is closed at the end of the chunk and re-opened at the start of the next)."""
    if utf16_length(html) <= limit:
        return [html] if html.strip() else []
    pieces = _pieces(html)
    layout = _Layout(pieces)
    chunks: list[str] = []
    start = 0
    while start < len(pieces):
        end, resume = layout.cut(start, limit)
        chunk = layout.render(start, end)
        if _has_text(pieces[start:end]):
            chunks.append(chunk)
        start = resume
    return chunks


def _pieces(html: str) -> list[_Piece]:
    pieces: list[_Piece] = []

    def characters(text: str) -> None:
        pieces.extend(_Piece(ch, 2 if ord(ch) > 0xFFFF else 1) for ch in text)

    position = 0
    for match in _PIECE.finditer(html):
        characters(html[position : match.start()])
        name = match["name"]
        if name is None:
            pieces.append(_Piece(match[0], len(match[0])))
        else:
            pieces.append(_Piece(match[0], utf16_length(match[0]), name.lower(), bool(match[1])))
        position = match.end()
    characters(html[position:])
    return pieces


class _Layout:
    """Sizes, open tags and break opportunities at every position of the pieces."""

    def __init__(self, pieces: list[_Piece]) -> None:
        self.pieces = pieces
        self.sizes = [0]
        for piece in pieces:
            self.sizes.append(self.sizes[-1] + piece.size)
        # open_tags[i]: the tags open before piece i, outermost first.
        self.open_tags: list[tuple[_Piece, ...]] = [()]
        for piece in pieces:
            self.open_tags.append(_after(self.open_tags[-1], piece))
        self.breaks = _breaks(pieces, self.open_tags)
        self.break_ends = [b.end for b in self.breaks]

    def render(self, start: int, end: int) -> str:
        reopen = "".join(tag.text for tag in self.open_tags[start])
        body = "".join(piece.text for piece in self.pieces[start:end])
        close = "".join(f"</{tag.tag}>" for tag in reversed(self.open_tags[end]))
        return reopen + body + close

    def size(self, start: int, end: int) -> int:
        reopen = sum(tag.size for tag in self.open_tags[start])
        close = sum(len(tag.tag) + 3 for tag in self.open_tags[end])
        return reopen + self.sizes[end] - self.sizes[start] + close

    def cut(self, start: int, limit: int) -> tuple[int, int]:
        """Where the chunk starting at `start` ends, and where the next one starts."""
        reopen = sum(tag.size for tag in self.open_tags[start])
        # The furthest end whose body alone fits; closing tags can only add to it.
        reach = bisect_right(self.sizes, self.sizes[start] + limit - reopen) - 1
        if reach >= len(self.pieces) and self.size(start, len(self.pieces)) <= limit:
            return len(self.pieces), len(self.pieces)
        candidates = self.breaks[
            bisect_right(self.break_ends, start) : bisect_right(self.break_ends, reach)
        ]
        fitting = [b for b in reversed(candidates) if self.size(start, b.end) <= limit]
        # Paragraph, line and sentence ends that fill at least half a message first, then
        # those that fill less, then word boundaries.
        for worst, least in ((_SENTENCE, limit // 2), (_SENTENCE, 0), (_WORD, 0)):
            for level in range(worst + 1):
                for found in fitting:
                    if found.level == level and self.size(start, found.end) >= least:
                        return found.end, found.resume
        return self._hard_cut(start, min(reach, len(self.pieces)), limit)

    def _hard_cut(self, start: int, reach: int, limit: int) -> tuple[int, int]:
        end = max(reach, start + 1)
        while end > start + 1 and self.size(start, end) > limit:
            end -= 1
        # Keep a character with its combining marks, variation selectors and joiners, unless
        # that one glyph is longer than a whole message.
        glyph_end = end
        while glyph_end > start + 1 and _clings(self.pieces, glyph_end):
            glyph_end -= 1
        if not _clings(self.pieces, glyph_end):
            end = glyph_end
        return end, end


def _after(open_tags: tuple[_Piece, ...], piece: _Piece) -> tuple[_Piece, ...]:
    if not piece.tag:
        return open_tags
    if not piece.closing:
        return (*open_tags, piece)
    for depth in range(len(open_tags) - 1, -1, -1):
        if open_tags[depth].tag == piece.tag:
            return open_tags[:depth]
    return open_tags  # a stray end tag: nothing to close


def _breaks(pieces: list[_Piece], open_tags: list[tuple[_Piece, ...]]) -> list[_Break]:
    """Every run of whitespace between text, as a place to cut, and how good a place it is."""
    found: list[_Break] = []
    index = 0
    count = len(pieces)
    while index < count:
        if not _is_space(pieces[index]):
            index += 1
            continue
        run_start = index
        while index < count and _is_space(pieces[index]):
            index += 1
        if run_start == 0 or index == count:
            continue
        run = "".join(piece.text for piece in pieces[run_start:index])
        newlines = run.count("\n")
        if newlines >= 2:
            level = _PARAGRAPH
        elif newlines == 1:
            level = _LINE
        elif _ends_sentence(pieces, run_start):
            level = _SENTENCE
        else:
            level = _WORD
        resume = index
        if any(tag.tag in _KEEPS_SPACES for tag in open_tags[run_start]):
            # In code, spaces are content: drop only the line break the cut stands for.
            resume = run_start + run.rfind("\n") + 1
        found.append(_Break(run_start, resume, level))
    return found


def _is_space(piece: _Piece) -> bool:
    return not piece.tag and piece.text.isspace()


def _ends_sentence(pieces: list[_Piece], end: int) -> bool:
    """Whether the text before `end` ends a sentence ("... done." or "(as said.)")."""
    index = end - 1
    while index >= 0 and (pieces[index].tag or pieces[index].text in _CLOSERS):
        index -= 1
    return index >= 0 and pieces[index].text in _SENTENCE_ENDS


def _clings(pieces: list[_Piece], index: int) -> bool:
    """Whether piece `index` belongs with the one before it (a cut there would split a glyph)."""
    if index <= 0 or index >= len(pieces):
        return False
    text, before = pieces[index].text, pieces[index - 1].text
    if pieces[index].tag or pieces[index - 1].tag:
        return False
    if before == "\u200d" or text == "\u200d":
        return True
    if len(text) != 1:
        return False
    return unicodedata.category(text) in ("Mn", "Me", "Mc") or 0xFE00 <= ord(text) <= 0xFE0F


def _has_text(pieces: list[_Piece]) -> bool:
    return any(not piece.tag and not piece.text.isspace() for piece in pieces)


__all__ = [
    "TELEGRAM_LIMIT",
    "escape",
    "split_message",
    "to_telegram_html",
    "utf16_length",
]
