"""What kind of document a file is, judged from its bytes, never from its name.

PDF by its `%PDF-` header; DOCX and XLSX by the zip's [Content_Types].xml and member names
(read from the zip's directory, nothing unpacked but that one small file); other known binary
formats by their signatures; then text: HTML by its tags, CSV by a sniffed and checked dialect,
Markdown by its markers, else plain text. The file name only breaks the tie between Markdown and
plain text when the content could be either.
"""

from __future__ import annotations

import builtins
import codecs
import csv
import io
import re
import zipfile
from collections import Counter
from dataclasses import dataclass

from backend.knowledge.parsing.document import DocumentType, Limits, ParseError
from backend.knowledge.parsing.zipguard import check_member_count

SAMPLE_BYTES = 64 * 1024
_CONTENT_TYPES_MAX = 1024 * 1024

# Signatures of binary formats people upload by mistake, to name them in the refusal.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"RIFF", "a RIFF media file (WebP, WAV or AVI)"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"MZ", "a Windows program"),
    (b"\xca\xfe\xba\xbe", "a compiled program"),
    (b"\xcf\xfa\xed\xfe", "a compiled program"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"ID3", "an MP3 file"),
    (b"OggS", "an Ogg media file"),
    (b"fLaC", "a FLAC audio file"),
    (b"\x00\x00\x00\x18ftyp", "an MP4 or QuickTime media file"),
    (b"\x00\x00\x00\x1cftyp", "an MP4 or QuickTime media file"),
    (b"\x00\x00\x00\x20ftyp", "an MP4 or QuickTime media file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"{\\rtf", "an RTF document (save it as .docx or PDF)"),
)
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

_HTML_START = re.compile(r"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
_HTML_TAG = re.compile(
    r"<(p|div|span|a|h[1-6]|ul|ol|li|table|tr|td|th|br|img|section|article|main|"
    r"script|style|meta|link|title|nav|footer|header|form|pre|blockquote)\b[^>]*>",
    re.I,
)
_MD_STRONG = re.compile(
    r"^(#{1,6}\s+\S|```|~~~|\s*\|.*\|\s*$|\s*\|?\s*:?-{3,}:?\s*\|)|\[[^\]\n]+\]\([^)\s]+\)",
    re.M,
)
_MD_WEAK = re.compile(r"^(\s*[-*+]\s+\S|\s*\d+[.)]\s+\S|>\s|\*\*\S)", re.M)
_MARKDOWN_NAMES = (".md", ".markdown", ".mdown", ".mkd")
_MARKDOWN_MIME = ("text/markdown", "text/x-markdown")


@dataclass(frozen=True, slots=True)
class Detected:
    type: DocumentType
    # Decoded text, for the text-based types.
    text: str | None = None
    csv_dialect: builtins.type[csv.Dialect] | None = None


def detect(
    data: bytes,
    *,
    filename: str | None = None,
    declared_type: str | None = None,
    limits: Limits | None = None,
) -> Detected:
    """The document type of `data`; raises ParseError for empty or unsupported content."""
    if not data.strip():
        raise ParseError("The file is empty.")
    head = data[:SAMPLE_BYTES]
    if b"%PDF-" in head[:1024]:
        return Detected(DocumentType.pdf)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return Detected(_zip_type(data, limits or Limits()))
    if head.startswith(_OLE2):
        raise ParseError(
            "The file is an old-style or password-protected Office document (.doc, .xls or an "
            "encrypted .docx/.xlsx). Save it as an unprotected .docx or .xlsx and upload that."
        )
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            raise ParseError(
                f"The file looks like {what}, not a document Parley can read. Upload a PDF, "
                "DOCX, XLSX, CSV, HTML, Markdown or text file."
            )
    text = decode_text(data)
    return _text_type(text, filename=filename, declared_type=declared_type)


def _zip_type(data: bytes, limits: Limits) -> DocumentType:
    check_member_count(data, limits)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            names = {info.filename for info in infos}
            content_types = ""
            ct_info = next((i for i in infos if i.filename == "[Content_Types].xml"), None)
            if ct_info is not None and ct_info.file_size <= _CONTENT_TYPES_MAX:
                content_types = archive.read(ct_info).decode("utf-8", "replace")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ParseError(
            "The file is a damaged ZIP archive (a .docx or .xlsx file that was cut off?) and "
            "could not be opened."
        ) from exc
    except NotImplementedError as exc:
        raise ParseError("The file is a ZIP archive packed in a way Parley can't read.") from exc
    if "wordprocessingml.document.main" in content_types or "word/document.xml" in names:
        return DocumentType.docx
    if (
        "spreadsheetml.sheet.main" in content_types
        or "ms-excel.sheet.macroEnabled.main" in content_types
        or "xl/workbook.xml" in names
    ):
        return DocumentType.xlsx
    if "presentationml" in content_types or "ppt/presentation.xml" in names:
        raise ParseError(
            "PowerPoint presentations are not supported; export the slides as PDF and upload that."
        )
    if "mimetype" in names and any(n.startswith("content.xml") for n in names):
        raise ParseError(
            "OpenDocument files are not supported; save the file as .docx, .xlsx or PDF."
        )
    raise ParseError(
        "The file is a ZIP archive, not a Word (.docx) or Excel (.xlsx) document. Upload the "
        "documents inside it one by one."
    )


def decode_text(data: bytes) -> str:
    """`data` as text: UTF-8 (or UTF-16/32 with a byte-order mark), else Windows-1252.

    Raises ParseError if it is binary: NUL bytes or many control characters in its first part.
    """
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise ParseError(
                    "The file says it is Unicode text but has invalid characters."
                ) from exc
    head = data[:SAMPLE_BYTES]
    if b"\x00" in head or _control_share(head) > 0.05:
        raise ParseError(
            "The file is binary data, not a document Parley can read. Upload a PDF, DOCX, XLSX, "
            "CSV, HTML, Markdown or text file."
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = data.decode("cp1252", errors="replace")
    if text.count("\ufffd") > max(10, len(text) // 100):
        raise ParseError(
            "The file's text encoding is not recognised; save it as UTF-8 and upload it again."
        )
    return text


def _control_share(sample: bytes) -> float:
    if not sample:
        return 0.0
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    return controls / len(sample)


def _text_type(text: str, *, filename: str | None, declared_type: str | None) -> Detected:
    sample = text[:SAMPLE_BYTES]
    if _HTML_START.match(sample):
        return Detected(DocumentType.html, text=text)
    # Markdown may hold HTML (a README that opens with a centred logo): the hint wins there.
    markdown_hint = bool(
        (filename and filename.lower().endswith(_MARKDOWN_NAMES))
        or (declared_type and declared_type.split(";")[0].strip().lower() in _MARKDOWN_MIME)
    )
    if not markdown_hint and _looks_like_html(sample):
        return Detected(DocumentType.html, text=text)
    if markdown_hint or _MD_STRONG.search(sample):
        return Detected(DocumentType.markdown, text=text)
    dialect = sniff_csv(sample)
    if dialect is not None:
        return Detected(DocumentType.csv, text=text, csv_dialect=dialect)
    if len(_MD_WEAK.findall(sample)) >= 3:
        return Detected(DocumentType.markdown, text=text)
    return Detected(DocumentType.text, text=text)


def _looks_like_html(sample: str) -> bool:
    stripped = sample.lstrip()
    if stripped.startswith("<?xml") and re.search(r"<html\b", sample[:4096], re.I):
        return True
    if stripped.startswith("<"):
        if _HTML_TAG.match(stripped):
            return True
        tags = {m.group(1).lower() for m in _HTML_TAG.finditer(sample[:16384])}
        return len(tags) >= 2
    return False


def sniff_csv(sample: str) -> type[csv.Dialect] | None:
    """A CSV dialect if `sample` reads as a table: at least two lines and two columns, with
    (nearly) every line having the same number of fields."""
    lines = sample.split("\n")
    if len(sample) >= SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut off
    lines = [line for line in lines[:50] if line.strip()]
    if len(lines) < 2 or max(len(line) for line in lines) > 4_000:
        return None
    while len(lines) > 2 and sum(len(line) for line in lines) > 32_768:
        lines.pop()
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
    except csv.Error:
        return None
    try:
        rows = list(csv.reader(lines, dialect))
    except csv.Error:
        return None
    widths = Counter(len(row) for row in rows)
    width, count = widths.most_common(1)[0]
    if width < 2 or count < max(2, int(len(rows) * 0.9)):
        return None
    # Prose with a comma in every line is not a table: fields of a table are mostly short.
    cells = [cell for row in rows for cell in row]
    long_cells = sum(1 for cell in cells if len(cell) > 200 or cell.count(" ") > 30)
    if long_cells > len(cells) // 2:
        return None
    # Nor is text whose lines end like sentences.
    sentence_ends = sum(1 for line in lines if line.rstrip().endswith((".", "!", "?", ":")))
    if sentence_ends * 2 > len(lines):
        return None
    if width == 2 and len(rows) < 3:
        return None
    return dialect
