"""What a parser produces, the limits it works within, and the one error it raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from backend.errors import AppError


class ParseError(AppError):
    """A file could not be read. `reason` (also `detail`) says why, for the person who sent it."""

    status_code = 422
    code = "unreadable_file"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DocumentType(StrEnum):
    pdf = "pdf"
    docx = "docx"
    xlsx = "xlsx"
    csv = "csv"
    html = "html"
    markdown = "markdown"
    text = "text"


class BlockKind(StrEnum):
    heading = "heading"
    paragraph = "paragraph"
    list_item = "list_item"
    table = "table"
    code = "code"


@dataclass(slots=True)
class Block:
    """One structural piece of a document, in reading order.

    Headings have a `level` (1 is the top). Tables have `rows`, the first of which is the
    header, and may have a caption in `text` (a sheet's name). `page` is the 1-based page of a
    PDF.
    """

    kind: BlockKind
    text: str = ""
    level: int = 0
    page: int | None = None
    rows: list[list[str]] | None = None


@dataclass(slots=True)
class ParsedDocument:
    type: DocumentType
    title: str | None
    blocks: list[Block]
    pages: int | None = None
    # Things a person should know about the result (parts skipped because of a limit).
    warnings: list[str] = field(default_factory=list)

    @property
    def text_length(self) -> int:
        total = 0
        for block in self.blocks:
            total += len(block.text)
            for row in block.rows or ():
                total += sum(len(cell) for cell in row)
        return total


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep a hostile or huge file from exhausting the worker."""

    max_input_bytes: int = 64 * 1024 * 1024
    # Zip-based formats (DOCX, XLSX): the declared unpacked size, the expansion ratio beyond
    # which a sizeable archive counts as a zip bomb, and the number of members.
    max_unpacked_bytes: int = 200 * 1024 * 1024
    max_compression_ratio: int = 100
    ratio_check_min_bytes: int = 10 * 1024 * 1024
    max_zip_members: int = 10_000
    # One XML part that is read into memory whole (a DOCX's document.xml, an XLSX's shared
    # strings); worksheets are streamed and not held to it.
    max_xml_part_bytes: int = 32 * 1024 * 1024
    # HTML is parsed into a tree that takes many times the page's size.
    max_html_bytes: int = 16 * 1024 * 1024
    # Text kept from one document; the rest is skipped with a warning.
    max_text_chars: int = 20_000_000
    max_pages: int = 2_000
    max_table_rows: int = 100_000
    max_table_columns: int = 200
    max_cells: int = 2_000_000
    max_cell_chars: int = 10_000


class BlockSink:
    """Collects blocks while keeping count of the text, rows and cells kept.

    `add` answers False once the text budget is spent: the parser then stops reading.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.blocks: list[Block] = []
        self.warnings: list[str] = []
        self._chars = 0
        self._cells = 0
        self.full = False

    def add(self, block: Block) -> bool:
        if self.full:
            return False
        room = self.limits.max_text_chars - self._chars
        size = len(block.text)
        if size > room:
            block.text = block.text[:room]
            size = room
            self._stop(
                f"Only the first {self.limits.max_text_chars:,} characters were read; "
                "the rest of the document was skipped."
            )
        self._chars += size
        if block.text or block.rows:
            self.blocks.append(block)
        return not self.full

    def add_cells(self, row: list[str]) -> bool:
        """Count a table row against the budgets; False if it does not fit any more."""
        if self.full:
            return False
        size = sum(len(cell) for cell in row)
        if (
            self._chars + size > self.limits.max_text_chars
            or self._cells + len(row) > self.limits.max_cells
        ):
            self._stop(
                f"The tables hold more than {self.limits.max_cells:,} cells or "
                f"{self.limits.max_text_chars:,} characters; only the first part was read."
            )
            return False
        self._chars += size
        self._cells += len(row)
        return True

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def _stop(self, message: str) -> None:
        self.full = True
        self.warn(message)
