"""PDF: the text layer of each page, with headings from the document outline (bookmarks).

pypdf is pure Python and caps what a compressed stream may unpack to. A PDF carries no
paragraphs, only lines: they are joined into paragraphs where a short line ends a sentence,
broken words are rejoined, and lines that start with a bullet or a number become list items.
"""

from __future__ import annotations

import io
import logging
import re
import statistics
from collections.abc import Iterator
from typing import Any

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

from backend.knowledge.parsing.clean import clean_inline, join_broken_words
from backend.knowledge.parsing.document import (
    Block,
    BlockKind,
    BlockSink,
    DocumentType,
    Limits,
    ParsedDocument,
    ParseError,
)

PROTECTED = "The PDF is password-protected; upload an unprotected copy."
_MAX_OUTLINE_ITEMS = 5_000
_BULLET_CHARS = "\u2022\u25aa\u25e6\u25cf\u25cb\u25a0\u25a1\u2023\u2043"
_BULLET = re.compile(r"^\s*([" + _BULLET_CHARS + r"\u2013\-*]|\(?\d{1,3}[.)]|\(?[a-z][.)])\s+")
_SENTENCE_END = re.compile(r"[.!?:;)\"\u201d\u2019]\s*$")
_END = object()
# Dot leaders of a table of contents: "Introduction . . . . . . 4".
_LEADER = re.compile(r"(?:[ \t]?\.){4,}[ \t]*")


# pypdf logs every oddity of a damaged file as a warning; the outcome is what counts here.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def parse_pdf(data: bytes, limits: Limits) -> ParsedDocument:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError as exc:
                raise ParseError(PROTECTED) from exc
            if opened == PasswordType.NOT_DECRYPTED:
                raise ParseError(PROTECTED)
        page_count = len(reader.pages)
    except ParseError:
        raise
    except (FileNotDecryptedError, NotImplementedError) as exc:
        # NotImplementedError: an encryption pypdf cannot open (a handler other than the
        # standard password one, an unknown algorithm), raised while reading or decrypting.
        raise ParseError(PROTECTED) from exc
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise ParseError(
            "The PDF is damaged and could not be read. Open it and save or print it to a new "
            "PDF, then upload that."
        ) from exc
    if page_count == 0:
        raise ParseError("The PDF has no pages.")

    sink = BlockSink(limits)
    headings = _outline_headings(reader)
    title = _metadata_title(reader)
    pages = min(page_count, limits.max_pages)
    if page_count > limits.max_pages:
        sink.warn(f"Only the first {limits.max_pages:,} of {page_count:,} pages were read.")
    unreadable = 0
    for index in range(pages):
        try:
            text = reader.pages[index].extract_text() or ""
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError):
            unreadable += 1
            continue
        if not _add_page(sink, text, index + 1, headings.get(index, [])):
            break
    if unreadable:
        sink.warn(f"{unreadable} page(s) could not be read and were skipped.")
    if not any(block.kind is not BlockKind.heading for block in sink.blocks):
        if unreadable == pages:
            raise ParseError(
                "The PDF is damaged and could not be read. Open it and save or print it to a "
                "new PDF, then upload that."
            )
        raise ParseError(
            "The PDF has no text to read: it is probably scanned images. Upload a PDF with "
            "selectable text (run it through OCR first) or the original document."
        )
    if title is None:
        title = next((b.text for b in sink.blocks if b.kind is BlockKind.heading), None)
    return ParsedDocument(
        type=DocumentType.pdf,
        title=title,
        blocks=sink.blocks,
        pages=page_count,
        warnings=sink.warnings,
    )


def _metadata_title(reader: PdfReader) -> str | None:
    try:
        meta = reader.metadata
        title = clean_inline(str(meta.title)) if meta is not None and meta.title else ""
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError):
        return None
    # Tools often put the file name or a placeholder in the title field.
    if not title or title.lower().endswith((".doc", ".docx", ".pdf")) or title == "untitled":
        return None
    return title


def _outline_headings(reader: PdfReader) -> dict[int, list[tuple[int, str]]]:
    """Page index -> the (level, title) outline entries that point into it, in order."""
    found: dict[int, list[tuple[int, str]]] = {}
    count = 0
    try:
        outline: Any = reader.outline
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return found
    # Pre-order walk; a nested list holds the children of the entry before it.
    stack: list[tuple[Iterator[Any], int]] = [(iter(outline), 1)]
    while stack and count < _MAX_OUTLINE_ITEMS:
        entries, level = stack[-1]
        item: Any = next(entries, _END)
        if item is _END:
            stack.pop()
            continue
        if isinstance(item, list):
            if len(stack) < 32:
                stack.append((iter(item), level + 1))
            continue
        try:
            page = reader.get_destination_page_number(item)
            title = clean_inline(str(item.title))
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if page is not None and page >= 0 and title:
            found.setdefault(page, []).append((min(level, 6), title))
            count += 1
    return found


def _add_page(sink: BlockSink, text: str, page: int, headings: list[tuple[int, str]]) -> bool:
    lines = [line.strip() for line in join_broken_words(text).split("\n")]
    pending = {_key(title): (level, title) for level, title in headings}
    # Outline entries whose title is not a line of the page open it.
    placed = {_key(line) for line in lines if _key(line) in pending}
    for key, (level, title) in pending.items():
        if key not in placed and not sink.add(
            Block(BlockKind.heading, title, level=level, page=page)
        ):
            return False
    lengths = [len(line) for line in lines if line]
    typical = statistics.median(lengths) if lengths else 0
    paragraph: list[str] = []
    kind = BlockKind.paragraph

    def flush() -> bool:
        nonlocal paragraph, kind
        if paragraph:
            text = _LEADER.sub(" ... ", clean_inline(" ".join(paragraph)))
            ok = sink.add(Block(kind, text, page=page))
            paragraph = []
            kind = BlockKind.paragraph
            return ok
        return True

    for line in lines:
        if not line:
            if not flush():
                return False
            continue
        key = _key(line)
        if key in placed:
            level, title = pending[key]
            placed.discard(key)
            if not flush() or not sink.add(Block(BlockKind.heading, title, level=level, page=page)):
                return False
            continue
        if _BULLET.match(line):
            if not flush():
                return False
            kind = BlockKind.list_item
            paragraph.append(_BULLET.sub("", line, count=1) if line[:1] in _BULLET_CHARS else line)
            continue
        paragraph.append(line)
        # A short line that ends a sentence ends its paragraph.
        if _SENTENCE_END.search(line) and len(line) < 0.75 * typical and not flush():
            return False
    return flush()


def _key(text: str) -> str:
    return " ".join(text.lower().split())
