"""Documents in, structured text out: PDF, DOCX, XLSX, CSV, HTML, Markdown and plain text.

`parse_document` detects the type from the content, parses it into blocks (headings,
paragraphs, list items, tables, code) and cleans the text. Any failure, a hostile file's
included, ends as a ParseError whose reason a person can act on; limits keep memory bounded.
"""

from __future__ import annotations

from pathlib import PurePath

import structlog

from backend.knowledge.parsing.clean import clean_inline
from backend.knowledge.parsing.detect import Detected, decode_text, detect
from backend.knowledge.parsing.document import (
    Block,
    BlockKind,
    DocumentType,
    Limits,
    ParsedDocument,
    ParseError,
)
from backend.knowledge.parsing.markup import parse_html
from backend.knowledge.parsing.pdf import parse_pdf
from backend.knowledge.parsing.sheets import parse_csv, parse_xlsx
from backend.knowledge.parsing.text import parse_markdown, parse_text
from backend.knowledge.parsing.word import parse_docx

__all__ = [
    "Block",
    "BlockKind",
    "Detected",
    "DocumentType",
    "Limits",
    "ParseError",
    "ParsedDocument",
    "decode_text",
    "detect",
    "parse_document",
]

log = structlog.get_logger(__name__)

DEFAULT_LIMITS = Limits()
_LABELS = {
    DocumentType.pdf: "PDF",
    DocumentType.docx: "Word document",
    DocumentType.xlsx: "Excel file",
    DocumentType.csv: "CSV file",
    DocumentType.html: "HTML page",
    DocumentType.markdown: "Markdown file",
    DocumentType.text: "text file",
}


def parse_document(
    data: bytes,
    *,
    filename: str | None = None,
    declared_type: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> ParsedDocument:
    """Parse `data`, whatever its name says it is. Raises ParseError, and nothing else."""
    if len(data) > limits.max_input_bytes:
        raise ParseError(
            f"The file is larger than {limits.max_input_bytes // (1024 * 1024)} MB; split it "
            "into smaller files."
        )
    try:
        detected = detect(data, filename=filename, declared_type=declared_type, limits=limits)
    except ParseError:
        raise
    except Exception as exc:
        log.warning("knowledge.detect_failed", filename=filename, exc_info=True)
        raise ParseError("The file could not be read: it seems damaged.") from exc
    try:
        document = _parse(data, detected, limits)
    except ParseError:
        raise
    except MemoryError as exc:
        raise ParseError(
            f"The {_LABELS[detected.type]} is too large to read; split it into smaller files."
        ) from exc
    except Exception as exc:
        log.warning(
            "knowledge.parse_failed", type=detected.type.value, filename=filename, exc_info=True
        )
        raise ParseError(
            f"The {_LABELS[detected.type]} could not be read: it seems damaged. Save it again "
            "from the program that made it and upload the new copy."
        ) from exc
    if not document.title and filename:
        document.title = clean_inline(PurePath(filename.replace("\\", "/")).stem) or None
    return document


def _parse(data: bytes, detected: Detected, limits: Limits) -> ParsedDocument:
    kind = detected.type
    if kind is DocumentType.pdf:
        return parse_pdf(data, limits)
    if kind is DocumentType.docx:
        return parse_docx(data, limits)
    if kind is DocumentType.xlsx:
        return parse_xlsx(data, limits)
    text = detected.text if detected.text is not None else decode_text(data)
    if kind is DocumentType.csv:
        return parse_csv(text, detected.csv_dialect, limits)
    if kind is DocumentType.html:
        return parse_html(text, limits)
    if kind is DocumentType.markdown:
        return parse_markdown(text, limits)
    return parse_text(text, limits)
