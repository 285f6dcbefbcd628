"""Parsing: the type comes from the content, every format reads into structured blocks, and
hostile files end as a ParseError a person can act on, within bounded time and memory."""

from __future__ import annotations

import io
import random
import time
import warnings
import zipfile

import pytest

from backend.knowledge.parsing import (
    BlockKind,
    DocumentType,
    Limits,
    ParsedDocument,
    ParseError,
    detect,
    parse_document,
)
from tests.knowledge.fixtures.builders import (
    encrypt_pdf,
    make_docx,
    make_pdf,
    make_xlsx,
    zip_bomb,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(56) + b"\x00" * 200

GUIDE_PDF = make_pdf(
    [
        [
            "Refund policy",
            "",
            "Refunds are paid within 14 days of the return. We check the",
            "item first and then send the money to the original card.",
            "",
            "\u2022 Keep the receipt",
            "\u2022 Use the original box",
        ],
        ["Shipping", "Parcels leave the warehouse every working day at 4 pm."],
    ],
    title="Customer Guide",
    outline=[("Refund policy", 0), ("Shipping", 1)],
)


def texts(doc: ParsedDocument, kind: BlockKind | None = None) -> list[str]:
    return [b.text for b in doc.blocks if kind is None or b.kind is kind]


def reason(data: bytes, **options: object) -> str:
    with pytest.raises(ParseError) as caught:
        parse_document(data, **options)  # type: ignore[arg-type]
    return caught.value.reason


# Detection by content


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (GUIDE_PDF, "notes.txt", DocumentType.pdf),
        (make_docx(), "report.pdf", DocumentType.docx),
        (make_xlsx(), "data.csv", DocumentType.xlsx),
        (b"<!DOCTYPE html><html><body><p>Hi</p></body></html>", "page.txt", DocumentType.html),
        (b"<div><p>Loose fragment</p><p>of HTML</p></div>", None, DocumentType.html),
        (b"name,price,stock\nlamp,24.5,3\nchair,149,0\n", "prices.txt", DocumentType.csv),
        (b"name;price\nlamp;24,5\nchair;149\ndesk;300\n", None, DocumentType.csv),
        (b"# Title\n\nSome *text*.\n\n## Part\n\nMore.\n", "notes.txt", DocumentType.markdown),
        (
            b"Dear team,\nthe office is closed on Friday.\nSee you Monday.\n",
            None,
            DocumentType.text,
        ),
        (
            b"Hello, world. This is prose, with commas.\nAnd a second line, also prose.\n",
            None,
            DocumentType.text,
        ),
        (b"Plain words only\n", "readme.md", DocumentType.markdown),
        (
            b'<p align="center"><img src="logo.png"></p>\n\n# Parley\n',
            "README.md",
            DocumentType.markdown,
        ),
    ],
)
def test_type_is_detected_from_content(
    data: bytes, name: str | None, expected: DocumentType
) -> None:
    assert detect(data, filename=name).type is expected


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (PNG + bytes(500), "scan.pdf", "looks like a PNG image"),
        (ELF, "report.docx", "looks like a program"),
        (random.Random(7).randbytes(4096), "x.txt", "binary data"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "old.doc", "old-style"),
        (b"", "empty.pdf", "The file is empty."),
        (b"  \n\t \n", "blank.txt", "The file is empty."),
    ],
)
def test_what_is_not_a_document_is_refused(data: bytes, name: str, message: str) -> None:
    assert message in reason(data, filename=name)


def test_other_zip_archives_are_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photos/cat.jpg", b"\xff\xd8\xff" + bytes(100))
    assert "not a Word (.docx) or Excel (.xlsx)" in reason(out.getvalue(), filename="a.docx")


def test_a_zip_packed_with_a_method_python_cannot_unpack_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        archive.writestr("word/document.xml", b"<w:document/>")
    packed = bytearray(out.getvalue())
    # Mark every entry as packed with method 99 (WinZip's AES) in its local and central headers.
    for signature, field in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = packed.find(signature)
        while at != -1:
            packed[at + field : at + field + 2] = (99).to_bytes(2, "little")
            at = packed.find(signature, at + 4)
    assert reason(bytes(packed), filename="a.docx") == (
        "The file is a ZIP archive packed in a way Parley can't read."
    )


# Each format


def test_pdf_pages_paragraphs_lists_and_outline_headings() -> None:
    doc = parse_document(GUIDE_PDF, filename="guide.txt")
    assert doc.type is DocumentType.pdf
    assert doc.title == "Customer Guide"
    assert doc.pages == 2
    kinds = [(b.kind, b.page) for b in doc.blocks]
    assert kinds == [
        (BlockKind.heading, 1),
        (BlockKind.paragraph, 1),
        (BlockKind.list_item, 1),
        (BlockKind.list_item, 1),
        (BlockKind.heading, 2),
        (BlockKind.paragraph, 2),
    ]
    assert texts(doc, BlockKind.heading) == ["Refund policy", "Shipping"]
    assert texts(doc, BlockKind.paragraph)[0] == (
        "Refunds are paid within 14 days of the return. We check the item first and then "
        "send the money to the original card."
    )
    assert texts(doc, BlockKind.list_item) == ["Keep the receipt", "Use the original box"]


def test_pdf_with_only_an_owner_password_is_read() -> None:
    doc = parse_document(encrypt_pdf(GUIDE_PDF, user_password="", owner_password="owner-secret"))
    assert "Refunds are paid within 14 days" in " ".join(texts(doc))


def test_docx_headings_lists_and_tables() -> None:
    doc = parse_document(make_docx(), filename="handbook.docx")
    assert doc.type is DocumentType.docx
    assert doc.title == "Employee Handbook"
    headings = [(b.level, b.text) for b in doc.blocks if b.kind is BlockKind.heading]
    assert headings == [
        (1, "Employee Handbook"),
        (1, "Leave"),
        (2, "Parental leave"),
        (1, "Offices"),
    ]
    assert texts(doc, BlockKind.list_item) == [
        "Tell your manager two months ahead.",
        "Fill in the leave form.",
    ]
    (table,) = [b for b in doc.blocks if b.kind is BlockKind.table]
    assert table.rows == [
        ["City", "Address", "Phone"],
        ["Berlin", "Hauptstr. 1", "+49 30 1234"],
        ["Lisbon", "Rua Augusta 10", "+351 21 5678"],
    ]


def test_xlsx_sheets_become_tables_with_a_header() -> None:
    doc = parse_document(make_xlsx(), filename="prices.xlsx")
    assert doc.type is DocumentType.xlsx
    assert doc.title == "Price list"
    assert texts(doc, BlockKind.heading) == ["Prices", "Contacts"]
    prices, contacts = (b.rows for b in doc.blocks if b.kind is BlockKind.table)
    assert prices == [
        ["Product", "Price", "In stock"],
        ["Desk lamp", "24.5", "TRUE"],
        ["Office chair", "149", "FALSE"],
        ["Monitor arm", "39.99", "TRUE"],
    ]
    assert contacts == [["Name", "Email"], ["Ana", "ana@example.com"]]


def test_xlsx_rows_are_capped() -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for i in range(60):
        sheet.append([f"item {i}", i])
    out = io.BytesIO()
    workbook.save(out)
    doc = parse_document(out.getvalue(), limits=Limits(max_table_rows=25))
    (table,) = [b for b in doc.blocks if b.kind is BlockKind.table]
    assert table.rows is not None
    assert len(table.rows) == 25
    assert doc.warnings == ["Only the first 25 rows of a table were read."]


def test_csv_is_one_table() -> None:
    data = b'name,city,phone\nAna,Lisbon,+351 1\n"Ben, Jr.",Berlin,+49 2\n'
    doc = parse_document(data, filename="contacts.csv")
    assert doc.type is DocumentType.csv
    assert doc.title == "contacts"
    (table,) = doc.blocks
    assert table.rows == [
        ["name", "city", "phone"],
        ["Ana", "Lisbon", "+351 1"],
        ["Ben, Jr.", "Berlin", "+49 2"],
    ]


def test_html_keeps_content_and_structure() -> None:
    page = b"""<!doctype html><html><head><title>Help Center</title>
    <style>body { color: red }</style></head><body>
    <nav><a href="/">Home</a> <a href="/pricing">Pricing</a></nav>
    <main><h1>Returns</h1><p>Send the item back within <b>30 days</b>.<br>Keep the label.</p>
    <ul><li>Pack it well<ul><li>Use tape</li></ul></li><li>Print the label</li></ul>
    <h2>Fees</h2>
    <table><tr><th>Country</th><th>Fee</th></tr><tr><td>Spain</td><td>5 EUR</td></tr>
    <tr><td>France</td><td>6 EUR</td></tr></table>
    <pre><code>curl -X POST /returns</code></pre>
    Loose text after the code.</main>
    <footer>Copyright 2026</footer></body></html>"""
    doc = parse_document(page)
    assert doc.type is DocumentType.html
    assert doc.title == "Help Center"
    assert [(b.kind, b.text) for b in doc.blocks if b.kind is not BlockKind.table] == [
        (BlockKind.heading, "Returns"),
        (BlockKind.paragraph, "Send the item back within 30 days.\nKeep the label."),
        (BlockKind.list_item, "Pack it well"),
        (BlockKind.list_item, "Use tape"),
        (BlockKind.list_item, "Print the label"),
        (BlockKind.heading, "Fees"),
        (BlockKind.code, "curl -X POST /returns"),
        (BlockKind.paragraph, "Loose text after the code."),
    ]
    (table,) = [b for b in doc.blocks if b.kind is BlockKind.table]
    assert table.rows == [["Country", "Fee"], ["Spain", "5 EUR"], ["France", "6 EUR"]]
    everything = " ".join(texts(doc))
    assert "Pricing" not in everything
    assert "Copyright" not in everything
    assert "color" not in everything


def test_markdown_structure() -> None:
    source = b"""---
title: Setup guide
---
# Install

Run the installer. See [the docs](https://example.com/docs) for **details**.

- first step
- second step
  continues here

```bash
make install
```

Configure
---------

| Setting | Default |
|---------|:-------:|
| port    | 8000    |
| workers | 1       |
"""
    doc = parse_document(source, filename="setup.md")
    assert doc.type is DocumentType.markdown
    assert doc.title == "Setup guide"
    assert [(b.kind, b.level, b.text) for b in doc.blocks if b.kind is not BlockKind.table] == [
        (BlockKind.heading, 1, "Install"),
        (BlockKind.paragraph, 0, "Run the installer. See the docs for details."),
        (BlockKind.list_item, 0, "first step"),
        (BlockKind.list_item, 0, "second step continues here"),
        (BlockKind.code, 0, "make install"),
        (BlockKind.heading, 2, "Configure"),
    ]
    (table,) = [b for b in doc.blocks if b.kind is BlockKind.table]
    assert table.rows == [["Setting", "Default"], ["port", "8000"], ["workers", "1"]]


def test_text_paragraphs() -> None:
    doc = parse_document(
        "First paragraph,\nstill the first.\n\n\n\nSecond\u00a0paragraph\u200b.\r\n".encode()
    )
    assert doc.type is DocumentType.text
    assert texts(doc) == ["First paragraph,\nstill the first.", "Second paragraph."]


def test_text_in_windows_1252_is_read() -> None:
    doc = parse_document("Caf\u00e9 au lait co\u00fbte 3 \u20ac.".encode("cp1252"))
    assert texts(doc) == ["Caf\u00e9 au lait co\u00fbte 3 \u20ac."]


def test_utf16_text_with_bom_is_read() -> None:
    doc = parse_document("\ufeffHello from UTF-16.\n".encode("utf-16"))
    assert texts(doc) == ["Hello from UTF-16."]


# Hostile files


def test_corrupt_pdf() -> None:
    junk = random.Random(3).randbytes(5000)
    assert "The PDF is damaged" in reason(b"%PDF-1.7\n" + junk)
    assert "The PDF is damaged" in reason(GUIDE_PDF[: len(GUIDE_PDF) // 2])


def test_encrypted_pdf() -> None:
    protected = encrypt_pdf(GUIDE_PDF, user_password="secret", owner_password="owner-secret")
    assert reason(protected) == "The PDF is password-protected; upload an unprotected copy."


def test_pdf_locked_by_a_security_handler_pypdf_lacks() -> None:
    # The public-key handler (certificates, not a password): pypdf raises NotImplementedError.
    protected = encrypt_pdf(GUIDE_PDF, user_password="secret", owner_password="owner-secret")
    assert b"/Filter /Standard" in protected
    other_handler = protected.replace(b"/Filter /Standard", b"/Filter /PubSec  ")
    assert reason(other_handler) == "The PDF is password-protected; upload an unprotected copy."


def test_pdf_without_text_layer() -> None:
    assert "no text to read" in reason(make_pdf([[], []]))


@pytest.mark.parametrize("kind", ["docx", "xlsx"])
def test_zip_bombs_are_refused_before_unpacking(kind: str) -> None:
    bomb = zip_bomb(kind, unpacked_mb=24)
    assert len(bomb) < 100_000
    message = reason(bomb, filename=f"report.{kind}")
    assert message.startswith("The file expands to 24 MB when unpacked")
    assert message.endswith("it looks like a zip bomb.")
    # The total alone also counts, whatever the ratio.
    strict = Limits(max_unpacked_bytes=8 * 1024 * 1024, max_compression_ratio=10**9)
    assert reason(bomb, limits=strict) == (
        "The file expands to more than 8 MB when unpacked; it looks like a zip bomb."
    )


def test_archives_of_too_many_parts_are_refused_unopened() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
        for i in range(300):
            archive.writestr(f"word/media/{i}.bin", b"")
    message = reason(out.getvalue(), limits=Limits(max_zip_members=100))
    assert message == (
        "The file holds 301 parts, more than the 100 a document may have; it looks like a zip bomb."
    )


def test_oversized_markup_parts_are_refused() -> None:
    bomb = zip_bomb("docx", unpacked_mb=3)
    limits = Limits(max_xml_part_bytes=2 * 1024 * 1024, max_compression_ratio=10**9)
    assert reason(bomb, limits=limits) == (
        "One part of the document is 3 MB of markup, more than the 2 MB Parley reads; split "
        "the document into smaller files."
    )


def test_oversized_html_is_refused() -> None:
    page = b"<html><body>" + b"<p>Filler paragraph.</p>" * 50_000 + b"</body></html>"
    message = reason(page, limits=Limits(max_html_bytes=1024 * 1024))
    assert message.startswith("The HTML page is larger than 1 MB")


def test_damaged_docx() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<Types><Override ContentType="application/vnd.openxmlformats-officedocument.'
            'wordprocessingml.document.main+xml"/></Types>',
        )
        archive.writestr("word/document.xml", "<w:document><unclosed>")
    assert "The Word document is damaged" in reason(out.getvalue())


def test_truncated_docx() -> None:
    data = make_docx()
    assert "damaged ZIP archive" in reason(data[: len(data) // 2])


def test_ten_megabytes_on_one_line() -> None:
    line = b"Ten megabytes of text on a single line keep the parser busy. " * 170_000
    assert len(line) > 10_000_000
    assert b"\n" not in line
    started = time.perf_counter()
    doc = parse_document(line, filename="dump.txt")
    assert time.perf_counter() - started < 10
    assert doc.type is DocumentType.text
    assert sum(len(b.text) for b in doc.blocks) == len(line.strip())


def test_text_beyond_the_limit_is_cut_with_a_warning() -> None:
    doc = parse_document(b"word " * 10_000, limits=Limits(max_text_chars=1_000))
    assert sum(len(b.text) for b in doc.blocks) == 1_000
    assert doc.warnings == [
        "Only the first 1,000 characters were read; the rest of the document was skipped."
    ]


def test_input_size_is_capped() -> None:
    message = reason(b"x" * 2_000_000, limits=Limits(max_input_bytes=1024 * 1024))
    assert message == "The file is larger than 1 MB; split it into smaller files."


def test_html_full_of_scripts() -> None:
    evil = "steal-the-cookies"
    scripts = "".join(
        f"<script>var s{i} = '{evil}'; document.write('{evil}');</script>"
        f"<noscript>{evil}</noscript><template><p>{evil}</p></template>"
        for i in range(2_000)
    )
    page = (
        f"<html><head><script>{evil}</script><title>Offers</title></head><body>"
        f'{scripts}<p onclick="{evil}">Spring offer: 20% off desks.</p>'
        f"<div hidden>{evil}</div><span style='display:none'>{evil}</span>"
        f'<div aria-hidden="true">{evil}</div><!-- {evil} -->'
        f"<iframe srcdoc='{evil}'></iframe><svg><text>{evil}</text></svg>"
        f"<style>.x::before {{ content: '{evil}' }}</style></body></html>"
    )
    doc = parse_document(page.encode(), filename="offers.html")
    assert texts(doc) == ["Spring offer: 20% off desks."]
    assert evil not in repr(doc)


def test_html_of_only_scripts_has_no_text() -> None:
    assert reason(b"<html><body><script>alert(1)</script></body></html>") == (
        "The HTML page has no readable text."
    )


def test_deeply_nested_html() -> None:
    page = "<div>" * 5_000 + "<p>Deep inside.</p>" + "</div>" * 5_000
    doc = parse_document(page.encode())
    assert "Deep inside." in texts(doc)


def test_navigation_bars_of_generated_docs_are_dropped_and_look_alikes_kept() -> None:
    # DocBook's output (the PostgreSQL manual's), XHTML with navigation tables around the text.
    page = b"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
    <!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
      "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
    <html xmlns="http://www.w3.org/1999/xhtml"><head><title>2.5. Querying a Table</title></head>
    <body><div class="navheader"><table width="100%" summary="Navigation header">
    <tr><th colspan="3">2.5. Querying a Table</th></tr>
    <tr><td><a href="a.html">Prev</a></td><td>Chapter 2. The SQL Language</td>
    <td><a href="b.html">Next</a></td></tr></table><hr/></div>
    <div class="sect1"><h2>2.5. Querying a Table</h2>
    <p>To retrieve data from a table, the table is queried with SELECT.</p></div>
    <div id="breadcrumbs"><a href="/">Docs</a> / <a href="/tutorial">Tutorial</a></div>
    <ul role="navigation"><li><a href="c.html">Up</a></li></ul>
    <div class="lunch-menu"><p>Soup of the day: tomato.</p></div>
    <div class="navy-theme"><p>Colours are navy and white.</p></div>
    <div class="navfooter"><table summary="Navigation footer"><tr>
    <td><a href="a.html">Prev</a></td><td><a href="index.html">Home</a></td>
    <td><a href="b.html">Next</a></td></tr></table></div></body></html>"""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # XHTML read as HTML warns nobody
        doc = parse_document(page)
    assert [b.text for b in doc.blocks] == [
        "2.5. Querying a Table",
        "To retrieve data from a table, the table is queried with SELECT.",
        "Soup of the day: tomato.",
        "Colours are navy and white.",
    ]
