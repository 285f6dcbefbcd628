"""Markdown and plain text, read line by line in one pass.

Markdown: ATX (#) and setext (=== / ---) headings, fenced code, list items, pipe tables,
block quotes and front matter; links and emphasis are reduced to their text. Plain text:
paragraphs between blank lines, and lines that start with a bullet or a number are list items.
"""

from __future__ import annotations

import re

from backend.knowledge.parsing.clean import clean_code, clean_inline, clean_text
from backend.knowledge.parsing.document import (
    Block,
    BlockKind,
    BlockSink,
    DocumentType,
    Limits,
    ParsedDocument,
    ParseError,
)

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST = re.compile(r"^([ \t]*)([-*+•]|\d{1,9}[.)])[ \t]+(.*)$")
_SETEXT_1 = re.compile(r"^ {0,3}=+[ \t]*$")
_SETEXT_2 = re.compile(r"^ {0,3}-+[ \t]*$")
_BREAK = re.compile(r"^ {0,3}([-*_])([ \t]*\1){2,}[ \t]*$")
_TABLE_SEPARATOR = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_QUOTE = re.compile(r"^ {0,3}>[ \t]?")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
# Spans are bounded so a long line full of unmatched brackets or markers stays linear.
_IMAGE = re.compile(r"!\[([^\]\n]{0,500})\]\([^)\n]{0,2000}\)")
_LINK = re.compile(r"\[([^\]\n]{1,500})\]\([^)\n]{0,2000}\)")
_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.{1,500}?)(?<=\S)\1")
_HTML_COMMENT = re.compile(r"<!--.{0,20000}?-->", re.S)


def parse_markdown(text: str, limits: Limits) -> ParsedDocument:
    return _parse(text, limits, markdown=True)


def parse_text(text: str, limits: Limits) -> ParsedDocument:
    return _parse(text, limits, markdown=False)


def _inline(text: str) -> str:
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    return _EMPHASIS.sub(r"\2", text)


def _cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [clean_inline(_inline(cell.replace("\\|", "|"))) for cell in _CELL_SPLIT.split(line)]


class _Reader:
    def __init__(self, sink: BlockSink, limits: Limits, *, markdown: bool) -> None:
        self.sink = sink
        self.limits = limits
        self.markdown = markdown
        self.paragraph: list[str] = []
        self.item: list[str] | None = None
        self.ok = True

    def _text(self, lines: list[str]) -> str:
        if self.markdown:
            return clean_text(_inline(" ".join(line.strip() for line in lines)))
        return clean_text("\n".join(lines))

    def flush(self) -> None:
        if self.item is not None:
            text = self._text(self.item)
            self.item = None
            if text:
                self.ok = self.sink.add(Block(BlockKind.list_item, text)) and self.ok
        if self.paragraph:
            text = self._text(self.paragraph)
            self.paragraph = []
            if text:
                self.ok = self.sink.add(Block(BlockKind.paragraph, text)) and self.ok

    def add(self, block: Block) -> None:
        self.flush()
        if block.text or block.rows:
            self.ok = self.sink.add(block) and self.ok


def _parse(text: str, limits: Limits, *, markdown: bool) -> ParsedDocument:
    sink = BlockSink(limits)
    reader = _Reader(sink, limits, markdown=markdown)
    title: str | None = None
    if markdown:
        text = _HTML_COMMENT.sub("", text)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    i = 0
    n = len(lines)
    if markdown and n and lines[0].strip() == "---":
        # Front matter: skipped, but its title is kept.
        end = next((j for j in range(1, min(n, 200)) if lines[j].strip() in ("---", "...")), 0)
        for j in range(1, end):
            key, _, value = lines[j].partition(":")
            if key.strip().lower() == "title" and value.strip():
                title = clean_inline(value.strip().strip("\"'"))
        i = end + 1 if end else 0
    while i < n and reader.ok:
        line = lines[i]
        i += 1
        if markdown:
            fence = _FENCE.match(line)
            if fence:
                marker = fence.group(1)
                body: list[str] = []
                while i < n and not lines[i].lstrip().startswith(marker):
                    body.append(lines[i])
                    i += 1
                i += 1  # the closing fence
                reader.add(Block(BlockKind.code, clean_code("\n".join(body))))
                continue
            atx = _ATX.match(line)
            if atx:
                heading = clean_inline(_inline(atx.group(2) or ""))
                reader.add(Block(BlockKind.heading, heading, level=len(atx.group(1))))
                continue
            if len(reader.paragraph) == 1 and reader.item is None:
                level = 1 if _SETEXT_1.match(line) else 2 if _SETEXT_2.match(line) else 0
                if level:
                    heading = clean_inline(_inline(reader.paragraph[0]))
                    reader.paragraph = []
                    reader.add(Block(BlockKind.heading, heading, level=level))
                    continue
            if "|" in line and i < n and _TABLE_SEPARATOR.match(lines[i]) and "-" in lines[i]:
                rows = [_cells(line)]
                i += 1
                while i < n and "|" in lines[i] and lines[i].strip():
                    if len(rows) >= limits.max_table_rows:
                        sink.warn(
                            f"A table longer than {limits.max_table_rows:,} rows was cut short."
                        )
                        break
                    rows.append(_cells(lines[i]))
                    i += 1
                reader.add(_table_block(rows, sink, limits))
                continue
            if _BREAK.match(line):
                reader.flush()
                continue
            quote = _QUOTE.match(line)
            if quote:
                line = line[quote.end() :]
        if not line.strip():
            reader.flush()
            continue
        item = _LIST.match(line)
        if item:
            reader.flush()
            reader.item = [item.group(3)]
            continue
        if reader.item is not None and line[:1] in (" ", "\t"):
            reader.item.append(line)
            continue
        if reader.item is not None:
            reader.flush()
        reader.paragraph.append(line)
    reader.flush()
    if not sink.blocks:
        raise ParseError("The file has no text.")
    if title is None and markdown:
        title = next((b.text for b in sink.blocks if b.kind is BlockKind.heading), None)
    return ParsedDocument(
        type=DocumentType.markdown if markdown else DocumentType.text,
        title=title,
        blocks=sink.blocks,
        warnings=sink.warnings,
    )


def _table_block(rows: list[list[str]], sink: BlockSink, limits: Limits) -> Block:
    width = min(max(len(row) for row in rows), limits.max_table_columns)
    table: list[list[str]] = []
    for row in rows:
        cells = (row + [""] * (width - len(row)))[:width]
        cells = [cell[: limits.max_cell_chars] for cell in cells]
        if not any(cells):
            continue
        if not sink.add_cells(cells):
            break
        table.append(cells)
    if not table:
        return Block(BlockKind.paragraph, "")
    header = table[0]
    for position, cell in enumerate(header):
        if not cell:
            header[position] = f"Column {position + 1}"
    if len(table) == 1:
        return Block(BlockKind.paragraph, " | ".join(header))
    return Block(BlockKind.table, rows=table)
