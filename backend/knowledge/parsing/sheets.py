"""XLSX and CSV: every sheet a table whose first non-empty row is the header."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable

import openpyxl

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

_EXCEL_MAX_ROWS = 1_048_576


def parse_xlsx(data: bytes, limits: Limits) -> ParsedDocument:
    check_zip(data, limits, streamed=("xl/worksheets/",))
    try:
        workbook = openpyxl.load_workbook(
            io.BytesIO(data), read_only=True, data_only=True, keep_links=False
        )
    except Exception as exc:  # openpyxl raises KeyError, ValueError, lxml errors and more
        raise ParseError(
            "The Excel file is damaged and could not be opened. Open it in Excel and save it "
            "again, then upload the new copy."
        ) from exc
    sink = BlockSink(limits)
    try:
        title = clean_inline(workbook.properties.title or "") or None
        for sheet in workbook.worksheets:
            name = clean_inline(str(sheet.title)) or "Sheet"
            values = sheet.iter_rows(max_col=limits.max_table_columns, values_only=True)
            rows = _collect(sink, ([_cell_text(v, limits) for v in row] for row in values), limits)
            if rows and not _add_sheet(sink, name, rows):
                break
            if sink.full:
                break
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(
            "The Excel file is damaged and could not be read. Open it in Excel and save it "
            "again, then upload the new copy."
        ) from exc
    finally:
        workbook.close()
    if not sink.blocks:
        raise ParseError("The Excel file has no data in its sheets.")
    return ParsedDocument(
        type=DocumentType.xlsx, title=title, blocks=sink.blocks, warnings=sink.warnings
    )


def parse_csv(text: str, dialect: type[csv.Dialect] | None, limits: Limits) -> ParsedDocument:
    sink = BlockSink(limits)
    reader = csv.reader(io.StringIO(text), dialect or csv.excel)
    try:
        rows = _collect(
            sink,
            ([clean_inline(cell)[: limits.max_cell_chars] for cell in row] for row in reader),
            limits,
        )
    except csv.Error as exc:
        raise ParseError(
            f"The CSV file could not be read at line {reader.line_num}: {exc}."
        ) from exc
    if not rows:
        raise ParseError("The CSV file has no data.")
    _add_sheet(sink, None, rows)
    return ParsedDocument(
        type=DocumentType.csv, title=None, blocks=sink.blocks, warnings=sink.warnings
    )


def _collect(sink: BlockSink, rows: Iterable[list[str]], limits: Limits) -> list[list[str]]:
    """Non-empty rows, trimmed to the limits; empty columns dropped, missing cells filled."""
    kept: list[list[str]] = []
    for scanned, row in enumerate(rows):
        if scanned >= _EXCEL_MAX_ROWS:
            break
        cells = row[: limits.max_table_columns]
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            continue
        if len(kept) >= limits.max_table_rows:
            sink.warn(f"Only the first {limits.max_table_rows:,} rows of a table were read.")
            break
        if not sink.add_cells(cells):
            break
        kept.append(cells)
    if not kept:
        return kept
    width = max(len(row) for row in kept)
    used = [any(i < len(row) and row[i] for row in kept) for i in range(width)]
    columns = [i for i in range(width) if used[i]]
    table = [[row[i] if i < len(row) else "" for i in columns] for row in kept]
    header = table[0]
    for position, cell in enumerate(header):
        if not cell:
            header[position] = f"Column {position + 1}"
    return table


def _add_sheet(sink: BlockSink, name: str | None, rows: list[list[str]]) -> bool:
    if name is not None and not sink.add(Block(BlockKind.heading, name, level=1)):
        return False
    # A sheet's name is already its heading.
    return sink.add(Block(BlockKind.table, "", rows=rows))


def _cell_text(value: object, limits: Limits) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "TRUE" if value else "FALSE"
    elif isinstance(value, float):
        text = str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    elif isinstance(value, dt.datetime):
        text = value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    elif isinstance(value, dt.date | dt.time):
        text = value.isoformat()
    else:
        text = str(value)
    return clean_inline(text)[: limits.max_cell_chars]
