"""Split a parsed document into chunks sized in the embedding model's tokens.

Chunks follow the document's structure. Paragraphs, list items and code under one heading path
are packed together up to `chunk_tokens`; a paragraph too long for one chunk splits at sentence
boundaries, and a sentence too long at token windows. Consecutive chunks of one section overlap
by whole sentences of up to `overlap_tokens`. Tables stay whole when they fit, else split by
rows with the header row repeated in every part, so each row is read with its column names.

Every chunk carries its heading path. `text` is what a person sees and a citation quotes;
`embed_text` is the heading path followed by the text, which is what gets embedded, and its
token count is `token_count`, never more than `chunk_tokens`. Text is counted in pieces
(sentences, windows, finished chunks), each a bounded number of times, so the work grows
linearly with the document, never with its square. The output depends only on the input:
the same document gives the same chunks and content hashes, so re-ingestion can skip the
unchanged ones.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from backend.knowledge.parsing.document import Block, BlockKind, ParsedDocument

TokenCounter = Callable[[str], int]

PATH_SEPARATOR = " > "
MIN_CHUNK_TOKENS = 16
_MAX_HEADING_CHARS = 300
# A heading path takes at most this share of a chunk's tokens; deeper paths are shortened.
_MAX_PREFIX_SHARE = 4
# A chunk holds at most this many characters per token of its budget. Text averages 3 to 5
# characters a token; the cap keeps text the model reads as a few unknown tokens (one "word"
# of thousands of letters) from making chunks of megabytes. A text longer than the cap is
# never counted whole, as it has to be split anyway.
_MAX_CHARS_PER_TOKEN = 16

# Sentence ends: terminal punctuation (closing quotes or brackets may follow) before
# whitespace or the end, CJK full stops, or a line break. Group 1 is the whitespace after.
_BOUNDARY = re.compile(
    r"(?:[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s|$)|[\u3002\uff01\uff1f]+|(?=\n))(\s*)"
)
_WHITESPACE = re.compile(r"\s+")


class ChunkKind(StrEnum):
    text = "text"
    table = "table"
    code = "code"


_TABLE = ChunkKind.table


@dataclass(frozen=True, slots=True)
class Chunk:
    ordinal: int
    text: str
    embed_text: str
    heading_path: list[str]
    page: int | None
    kind: ChunkKind
    token_count: int
    content_hash: str


@dataclass(slots=True)
class _Unit:
    """A piece of a section that is never split further: a sentence, a list item, a line of
    code, a token window. `joiner` goes between it and the unit before it in a chunk."""

    text: str
    tokens: int
    joiner: str
    page: int | None
    kind: ChunkKind


def content_hash(text: str, heading_path: Sequence[str]) -> str:
    """sha256 of the heading path and the text, with Unicode and whitespace normalized."""
    normalized = _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
    path = PATH_SEPARATOR.join(_WHITESPACE.sub(" ", part).strip() for part in heading_path)
    return hashlib.sha256(f"{path}\x1f{normalized}".encode()).hexdigest()


def chunk_document(
    doc: ParsedDocument,
    *,
    count_tokens: TokenCounter,
    chunk_tokens: int,
    overlap_tokens: int,
) -> list[Chunk]:
    """The chunks of `doc`, in reading order.

    `count_tokens` is the embedding provider's; `chunk_tokens` must not exceed its
    `max_tokens`. `overlap_tokens` may be at most half of `chunk_tokens`.
    """
    if chunk_tokens < MIN_CHUNK_TOKENS:
        raise ValueError(f"chunk_tokens must be at least {MIN_CHUNK_TOKENS}")
    if not 0 <= overlap_tokens <= chunk_tokens // 2:
        raise ValueError("overlap_tokens must be at least 0 and at most half of chunk_tokens")
    return _Chunker(count_tokens, chunk_tokens, overlap_tokens).run(doc.blocks)


class _Chunker:
    def __init__(self, count: TokenCounter, chunk_tokens: int, overlap_tokens: int) -> None:
        self.count = count
        self.limit = chunk_tokens
        self.overlap = overlap_tokens
        self.chunks: list[Chunk] = []

    def run(self, blocks: Sequence[Block]) -> list[Chunk]:
        path: list[tuple[int, str]] = []
        section: list[Block] = []
        for block in blocks:
            if block.kind is BlockKind.heading:
                self._section([title for _, title in path], section)
                section = []
                while path and path[-1][0] >= block.level:
                    path.pop()
                if block.text:
                    path.append((block.level, block.text[:_MAX_HEADING_CHARS]))
            elif block.kind is BlockKind.table:
                self._section([title for _, title in path], section)
                section = []
                self._table([title for _, title in path], block)
            else:
                section.append(block)
        self._section([title for _, title in path], section)
        return self.chunks

    # Heading paths

    def _prefix(self, heading_path: list[str]) -> tuple[str, int]:
        """The context line put before a chunk's text for embedding, and its tokens."""
        if not heading_path:
            return "", 0
        cap = self.limit // _MAX_PREFIX_SHARE
        parts = list(heading_path)
        while parts:
            prefix = PATH_SEPARATOR.join(parts) + "\n\n"
            tokens = self.count(prefix)
            if tokens <= cap:
                return prefix, tokens
            if len(parts) == 1:
                # One heading longer than the cap: keep its first window.
                first = next(self._windows(parts[0], max(cap - 2, 1)), None)
                if first is None:
                    return "", 0
                prefix = first[0] + "\n\n"
                return prefix, self.count(prefix)
            parts.pop(0)  # the top levels go first: the nearest heading says the most
        return "", 0

    # Sections of prose, lists and code

    def _section(self, heading_path: list[str], blocks: list[Block]) -> None:
        if not blocks:
            return
        prefix, prefix_tokens = self._prefix(heading_path)
        budget = self.limit - prefix_tokens
        units = self._units(blocks, budget)
        self._pack(units, heading_path, prefix, budget, overlap=True)

    def _units(self, blocks: list[Block], budget: int) -> Iterator[_Unit]:
        previous: BlockKind | None = None
        for block in blocks:
            between = "\n" if previous is BlockKind.list_item is block.kind else "\n\n"
            previous = block.kind
            if block.kind is BlockKind.code:
                yield from self._code_units(block, budget, between)
                continue
            text = f"- {block.text}" if block.kind is BlockKind.list_item else block.text
            whole = self._count_if_small(text, budget)
            if whole is not None and whole <= budget:
                yield _Unit(text, whole, between, block.page, ChunkKind.text)
                continue
            joiner = between
            for sentence, after in _sentences(text):
                for k, (piece, tokens, glue) in enumerate(self._fit(sentence, budget)):
                    yield _Unit(piece, tokens, glue if k else joiner, block.page, ChunkKind.text)
                joiner = ("\n" if "\n" in after else " ") if after else ""

    def _code_units(self, block: Block, budget: int, between: str) -> Iterator[_Unit]:
        whole = self._count_if_small(block.text, budget)
        if whole is not None and whole <= budget:
            yield _Unit(block.text, whole, between, block.page, ChunkKind.code)
            return
        joiner = between
        for line in block.text.split("\n"):
            if not line.strip():
                continue
            for k, (piece, tokens, glue) in enumerate(self._fit(line, budget)):
                yield _Unit(piece, tokens, glue if k else joiner, block.page, ChunkKind.code)
            joiner = "\n"

    def _count_if_small(self, text: str, budget: int) -> int | None:
        """Tokens of `text`, or None when it is far too long to fit `budget` anyway (a token is
        rarely longer than a word), so a huge text is never counted whole."""
        if len(text) > budget * _MAX_CHARS_PER_TOKEN:
            return None
        return self.count(text)

    def _fit(self, text: str, budget: int) -> Iterator[tuple[str, int, str]]:
        """`text` in pieces of at most `budget` tokens: itself if it fits, else token windows.
        Yields (piece, tokens, joiner before it); the first piece's joiner is "" (the caller's)."""
        whole = self._count_if_small(text, budget)
        if whole is not None and whole <= budget:
            yield text, whole, ""
            return
        yield from self._windows(text, budget)

    def _windows(self, text: str, budget: int) -> Iterator[tuple[str, int, str]]:
        """Consecutive pieces of `text` of at most `budget` tokens, cut between words where
        possible. The size of each window is guessed from the characters per token seen so far
        and shrunk until it fits, so each part of the text is counted only a few times.
        Yields (piece, tokens, joiner before it); joining them gives the text back, with each
        run of whitespace reduced to one space or line break."""
        text = text.strip()
        n = len(text)
        pos = 0
        joiner = ""
        chars_per_token = 4.0
        while pos < n:
            span = max(1, min(int(budget * chars_per_token), budget * _MAX_CHARS_PER_TOKEN))
            end = _cut(text, pos, min(n, pos + span))
            while True:
                piece = text[pos:end].rstrip()
                tokens = self.count(piece)
                if tokens <= budget or end - pos <= 1:
                    break
                shorter = max(1, min(end - pos - 1, int((end - pos) * budget / tokens * 0.9)))
                end = _cut(text, pos, pos + shorter)
            yield piece, tokens, joiner
            chars_per_token = max(1.0, len(piece) / max(tokens, 1))
            gap = _WHITESPACE.match(text, end)
            after = gap.group(0) if gap else ""
            joiner = ("\n" if "\n" in after else " ") if after else ""
            pos = end + len(after)

    def _pack(
        self,
        units: Iterable[_Unit],
        heading_path: list[str],
        prefix: str,
        budget: int,
        *,
        overlap: bool,
        kind: ChunkKind | None = None,
    ) -> None:
        """Fill chunks with units in order, each up to `budget` tokens."""
        pending: deque[_Unit] = deque()
        source = iter(units)
        current: list[_Unit] = []
        used = 0
        max_chars = budget * _MAX_CHARS_PER_TOKEN
        chars = 0
        while True:
            unit = pending.popleft() if pending else next(source, None)
            if unit is None:
                break
            if current and (used + unit.tokens > budget or chars + len(unit.text) + 2 > max_chars):
                emitted, carried = self._emit(current, heading_path, prefix, kind)
                pending.appendleft(unit)
                pending.extendleft(reversed(carried))
                current, used = [], 0
                if overlap and not carried:
                    current, used = self._overlap_tail(emitted, pending[0].tokens, budget)
                    room = max_chars - len(pending[0].text) - 2
                    while current and sum(len(u.text) + 2 for u in current) > room:
                        used -= current.pop(0).tokens
                chars = sum(len(u.text) + 2 for u in current)
                continue
            current.append(unit)
            used += unit.tokens
            chars += len(unit.text) + 2
        while current:
            _, current = self._emit(current, heading_path, prefix, kind)

    def _overlap_tail(
        self, emitted: list[_Unit], next_tokens: int, budget: int
    ) -> tuple[list[_Unit], int]:
        """The end of the chunk just made, whole sentences up to `overlap` tokens, to start the
        next one with; never the whole chunk, and never so much that the next unit won't fit."""
        room = min(self.overlap, budget - next_tokens)
        tail: list[_Unit] = []
        tokens = 0
        for index in range(len(emitted) - 1, -1, -1):
            unit = emitted[index]
            if tokens + unit.tokens <= room and index > 0:
                tail.append(unit)
                tokens += unit.tokens
                continue
            # Take the unit's last sentences that still fit.
            sentences = list(_sentences(unit.text)) if len(unit.text) < 20_000 else []
            picked: list[str] = []
            for sentence, _ in reversed(sentences[1:]):
                cost = self.count(sentence)
                if tokens + cost > room:
                    break
                picked.append(sentence)
                tokens += cost
            if picked:
                text = " ".join(reversed(picked))
                tail.append(_Unit(text, self.count(text), unit.joiner, unit.page, unit.kind))
            break
        tail.reverse()
        return tail, sum(unit.tokens for unit in tail)

    def _emit(
        self,
        units: list[_Unit],
        heading_path: list[str],
        prefix: str,
        kind: ChunkKind | None,
    ) -> tuple[list[_Unit], list[_Unit]]:
        """Make a chunk of `units`. Returns the units used and those carried over to the next
        chunk because, joined, the text counted more tokens than its pieces (BPE tokenizers
        can merge across a join)."""
        parts = list(units)
        carried: list[_Unit] = []
        while True:
            text = _join_units(parts)
            embed_text = prefix + text
            tokens = self.count(embed_text)
            if tokens <= self.limit:
                break
            if len(parts) > 1:
                carried.insert(0, parts.pop())
                continue
            # One unit that overflows once joined to the prefix: cut it smaller.
            only = parts[0]
            smaller = max(1, only.tokens - (tokens - self.limit) - 1)
            pieces = list(self._windows(only.text, smaller))
            parts = [_Unit(pieces[0][0], pieces[0][1], only.joiner, only.page, only.kind)]
            rest = [_Unit(p, t, glue, only.page, only.kind) for p, t, glue in pieces[1:]]
            carried = rest + carried
        self.chunks.append(
            Chunk(
                ordinal=len(self.chunks),
                text=text,
                embed_text=embed_text,
                heading_path=list(heading_path),
                page=next((u.page for u in parts if u.page is not None), None),
                kind=kind or _majority_kind(parts),
                token_count=tokens,
                content_hash=content_hash(text, heading_path),
            )
        )
        if carried:
            carried[0].joiner = ""
        return parts, carried

    # Tables

    def _table(self, heading_path: list[str], block: Block) -> None:
        """A table whole if it fits, else groups of rows each under a copy of the header; a row
        too long to share a chunk with the header becomes "Column: value" lines."""
        rows = block.rows or []
        if not rows:
            return
        prefix, prefix_tokens = self._prefix(heading_path)
        budget = self.limit - prefix_tokens
        header = rows[0]
        caption = block.text
        head = (f"{caption}\n" if caption else "") + _markdown_row(header)
        head += "\n" + _markdown_row(["---"] * len(header))
        head_tokens = self._count_if_small(head, budget)
        if head_tokens is None or head_tokens > budget // 2:
            for row in rows[1:] or [header]:
                self._record(heading_path, prefix, budget, caption, header, row, block.page)
            return
        head_unit = _Unit(head, head_tokens, "", block.page, _TABLE)
        batch: list[_Unit] = []
        for row in rows[1:]:
            line = _markdown_row(row)
            tokens = self._count_if_small(line, budget)
            if tokens is not None and head_tokens + tokens <= budget:
                batch.append(_Unit(line, tokens, "\n", block.page, _TABLE))
                continue
            self._under_head(heading_path, prefix, budget, head_unit, batch)
            batch = []
            self._record(heading_path, prefix, budget, caption, header, row, block.page)
        if batch or len(rows) == 1:
            self._under_head(heading_path, prefix, budget, head_unit, batch, always=True)

    def _record(
        self,
        heading_path: list[str],
        prefix: str,
        budget: int,
        caption: str,
        header: list[str],
        row: list[str],
        page: int | None,
    ) -> None:
        """One row as "Column: value" lines. When it needs several chunks, each starts with
        the caption and the row's first value, so every part says which row it belongs to."""
        lines = [f"{name}: {value}" for name, value in zip(header, row, strict=False) if value]
        if not lines:
            return
        head_text = (f"{caption}\n" if caption else "") + lines[0]
        head_tokens = self._count_if_small(head_text, budget)
        head: _Unit | None = None
        if head_tokens is not None and head_tokens <= budget // 2:
            head = _Unit(head_text, head_tokens, "", page, _TABLE)
            lines = lines[1:]
        room = budget - (head.tokens if head else 0)
        units: list[_Unit] = []
        for line in lines:
            for k, (piece, tokens, glue) in enumerate(self._fit(line, room)):
                units.append(_Unit(piece, tokens, glue if k else "\n", page, _TABLE))
        self._under_head(heading_path, prefix, budget, head, units, always=True)

    def _under_head(
        self,
        heading_path: list[str],
        prefix: str,
        budget: int,
        head: _Unit | None,
        units: list[_Unit],
        *,
        always: bool = False,
    ) -> None:
        """Chunks of `units`, each starting with `head` (a table's header, a row's key)."""
        max_chars = budget * _MAX_CHARS_PER_TOKEN
        start = [head] if head else []
        group = list(start)
        used = sum(u.tokens for u in group)
        chars = sum(len(u.text) + 2 for u in group)
        for unit in units:
            if len(group) > len(start) and (
                used + unit.tokens > budget or chars + len(unit.text) + 2 > max_chars
            ):
                self._pack(group, heading_path, prefix, budget, overlap=False, kind=_TABLE)
                group = list(start)
                used = sum(u.tokens for u in group)
                chars = sum(len(u.text) + 2 for u in group)
            if head is not None and len(group) == 1:
                unit = _Unit(unit.text, unit.tokens, "\n", unit.page, unit.kind)
            group.append(unit)
            used += unit.tokens
            chars += len(unit.text) + 2
        if len(group) > len(start) or (always and group):
            self._pack(group, heading_path, prefix, budget, overlap=False, kind=_TABLE)


def _sentences(text: str) -> Iterator[tuple[str, str]]:
    """(sentence, whitespace after it) pairs; a line break also ends a sentence."""
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.start(1)
        if end > start:
            sentence = text[start:end].strip()
            if sentence:
                yield sentence, match.group(1)
        start = match.end()
    rest = text[start:].strip()
    if rest:
        yield rest, ""


def _cut(text: str, start: int, end: int) -> int:
    """Where to end a window that may reach `end`: at the last whitespace in it, unless that
    would keep less than a quarter of it (a very long word), or at the end of the text."""
    if end >= len(text):
        return len(text)
    floor = start + max(1, (end - start) // 4)
    best = max(
        text.rfind(" ", floor, end), text.rfind("\n", floor, end), text.rfind("\t", floor, end)
    )
    return best if best > start else max(end, start + 1)


def _join_units(units: Sequence[_Unit]) -> str:
    return "".join((unit.joiner if k else "") + unit.text for k, unit in enumerate(units))


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _majority_kind(units: Sequence[_Unit]) -> ChunkKind:
    weights: dict[ChunkKind, int] = {}
    for unit in units:
        weights[unit.kind] = weights.get(unit.kind, 0) + unit.tokens
    return max(weights, key=lambda k: (weights[k], k.value)) if weights else ChunkKind.text
