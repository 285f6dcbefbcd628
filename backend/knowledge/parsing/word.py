"""DOCX: paragraphs and tables in reading order, headings from paragraph styles, list items."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

import docx
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph

from backend.knowledge.parsing.clean import clean_inline
from backend.knowledge.parsing.document import (
    Block,
    BlockKind,
    BlockSink,
    DocumentType,
    Limits,
    ParsedDocument,
    ParseError,
)
from backend.knowledge.parsing.zipguard import check_zip

_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.I)
_CODE_STYLES = ("code", "html preformatted", "macro text", "source")
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def parse_docx(data: bytes, limits: Limits) -> ParsedDocument:
    check_zip(data, limits)
    try:
        document = docx.Document(io.BytesIO(data))
    except ParseError:
        raise
    except Exception as exc:  # python-docx raises anything from KeyError to lxml's errors
        raise ParseError(
            "The Word document is damaged and could not be opened. Open it in Word and save it "
            "again, then upload the new copy."
        ) from exc
    sink = BlockSink(limits)
    title: str | None = None
    try:
        title = clean_inline(document.core_properties.title or "") or None
        for item in document.iter_inner_content():
            if isinstance(item, Paragraph):
                block = _paragraph_block(item)
                if block is None:
                    continue
                if block.kind is BlockKind.heading and block.level == 0:
                    title = title or block.text
                    block.level = 1
                if not sink.add(block):
                    break
            elif isinstance(item, Table) and not _add_table(sink, item, limits):
                break
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(
            "The Word document is damaged and could not be read. Open it in Word and save it "
            "again, then upload the new copy."
        ) from exc
    if not sink.blocks:
        raise ParseError("The Word document has no text.")
    if title is None:
        title = next((b.text for b in sink.blocks if b.kind is BlockKind.heading), None)
    return ParsedDocument(
        type=DocumentType.docx, title=title, blocks=sink.blocks, warnings=sink.warnings
    )


def _paragraph_block(paragraph: Paragraph) -> Block | None:
    text = paragraph.text
    if not text.strip():
        return None
    style_names = _style_names(paragraph)
    if any(name.lower() == "title" for name in style_names[:1]):
        return Block(BlockKind.heading, clean_inline(text), level=0)
    level = _heading_level(paragraph, style_names)
    if level:
        return Block(BlockKind.heading, clean_inline(text), level=level)
    if any(name.lower().startswith(_CODE_STYLES) for name in style_names):
        return Block(BlockKind.code, text)
    if _is_list_item(paragraph, style_names):
        return Block(BlockKind.list_item, text)
    return Block(BlockKind.paragraph, text)


def _style_names(paragraph: Paragraph) -> list[str]:
    """The paragraph's style and the styles it is based on, nearest first."""
    names: list[str] = []
    style = paragraph.style
    while style is not None and len(names) < 8:
        if style.name:
            names.append(style.name)
        style = style.base_style
    return names


def _heading_level(paragraph: Paragraph, style_names: list[str]) -> int:
    for name in style_names:
        match = _HEADING_STYLE.match(name)
        if match:
            return int(match.group(1))
    # A custom style can make a heading by its outline level (0-based; 9 means body text).
    p_pr = paragraph._p.pPr
    if p_pr is not None:
        outline = p_pr.find(f"{_W}outlineLvl")
        if outline is not None:
            value = outline.get(f"{_W}val", "")
            if value.isdigit() and int(value) < 9:
                return int(value) + 1
    return 0


def _is_list_item(paragraph: Paragraph, style_names: list[str]) -> bool:
    p_pr = paragraph._p.pPr
    if p_pr is not None and p_pr.numPr is not None:
        return True
    return any("list" in name.lower() for name in style_names)


def _add_table(sink: BlockSink, table: Table, limits: Limits) -> bool:
    rows: list[list[str]] = []
    for index, row in enumerate(table.rows):
        if index >= limits.max_table_rows:
            sink.warn(f"A table longer than {limits.max_table_rows:,} rows was cut short.")
            break
        cells = _row_texts(row.cells, limits)
        if not any(cells):
            continue
        if not sink.add_cells(cells):
            break
        rows.append(cells)
    if not rows:
        return not sink.full
    if len(rows) == 1 or max(len(r) for r in rows) == 1:
        # A one-row or one-column table is layout, not data: read it as paragraphs.
        for cells in rows:
            for cell in cells:
                if cell and not sink.add(Block(BlockKind.paragraph, cell)):
                    return False
        return True
    return sink.add(Block(BlockKind.table, rows=rows))


def _row_texts(row_cells: Sequence[_Cell], limits: Limits) -> list[str]:
    """The cells' texts. python-docx repeats a horizontally merged cell once per grid column;
    the copies read as empty, so the row keeps its columns and the text appears once."""
    texts: list[str] = []
    previous: object = None
    for cell in row_cells[: limits.max_table_columns]:
        element = cell._tc
        texts.append(
            "" if element is previous else clean_inline(cell.text)[: limits.max_cell_chars]
        )
        previous = element
    return texts
