"""HTML: the readable content, without scripts, styles, navigation or hidden elements.

Headings h1-h6, paragraphs, list items, preformatted code and tables become blocks; loose text
inside containers becomes paragraphs. The tree is walked with an explicit stack, so deeply nested
markup cannot exhaust Python's recursion limit.
"""

from __future__ import annotations

import re
import warnings

from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning
from bs4.element import (
    CData,
    Comment,
    Declaration,
    Doctype,
    NavigableString,
    ProcessingInstruction,
    Tag,
)

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

# Removed with everything inside them before anything is read.
DROPPED_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "footer",
    "iframe",
    "object",
    "embed",
    "svg",
    "canvas",
    "math",
    "form",
    "button",
    "select",
    "textarea",
    "input",
    "dialog",
    "head",
)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_PARAGRAPHS = {"p", "dt", "dd", "figcaption", "caption", "summary", "address"}
_CONTAINERS = {
    "html",
    "body",
    "main",
    "article",
    "section",
    "div",
    "header",
    "aside",
    "blockquote",
    "ul",
    "ol",
    "dl",
    "figure",
    "details",
    "center",
    "fieldset",
    "hgroup",
    "td",
    "th",
}
# Stands for a <br> while the source's own line breaks, mere whitespace in HTML, are collapsed.
_BREAK = "\ue000"
_SKIPPED_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction, CData)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
# Navigation without a <nav> tag: what generated documentation wraps its "Prev / Up / Next" bars
# in (DocBook's navheader and navfooter tables, Bootstrap's navbar, breadcrumbs). Matched on
# whole words of a class or id, so a restaurant's "menu" or a "navy-theme" stays.
_NAVIGATION_WORDS = frozenset(
    {"nav", "navbar", "navigation", "navheader", "navfooter", "breadcrumb", "breadcrumbs"}
)
_WORDS = re.compile(r"[a-z0-9]+")


def parse_html(text: str, limits: Limits) -> ParsedDocument:
    if len(text) > limits.max_html_bytes:
        raise ParseError(
            f"The HTML page is larger than {limits.max_html_bytes // (1024 * 1024)} MB; save "
            "its text as a PDF or text file and upload that."
        )
    try:
        with warnings.catch_warnings():
            # XHTML read as HTML is what a browser does too; nothing for anyone to act on.
            warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
            soup = BeautifulSoup(text, "lxml")
    except Exception as exc:  # lxml gives up only on pathological input
        raise ParseError("The HTML page could not be read.") from exc
    title_tag = soup.find("title")
    title = clean_inline(title_tag.get_text()) if isinstance(title_tag, Tag) else ""
    for tag in soup.find_all(DROPPED_TAGS):
        if not tag.decomposed:
            tag.decompose()
    for tag in soup.find_all(_is_hidden_or_navigation):
        if not tag.decomposed:
            tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with(_BREAK)
    sink = BlockSink(limits)
    _walk(soup, sink, limits)
    if not sink.blocks:
        raise ParseError("The HTML page has no readable text.")
    if not title:
        title = next((b.text for b in sink.blocks if b.kind is BlockKind.heading), "")
    return ParsedDocument(
        type=DocumentType.html, title=title or None, blocks=sink.blocks, warnings=sink.warnings
    )


def _is_hidden_or_navigation(tag: Tag) -> bool:
    if tag.has_attr("hidden") or tag.get("aria-hidden") == "true":
        return True
    if tag.get("role") == "navigation":
        return True
    style = tag.get("style")
    if isinstance(style, str) and _HIDDEN_STYLE.search(style):
        return True
    return tag.name != "body" and _names_navigation(tag)


def _names_navigation(tag: Tag) -> bool:
    classes = tag.get("class")
    names: list[str] = [str(c) for c in classes] if isinstance(classes, list) else []
    if isinstance(classes, str):
        names.append(classes)
    ident = tag.get("id")
    if isinstance(ident, str):
        names.append(ident)
    return any(word in _NAVIGATION_WORDS for name in names for word in _WORDS.findall(name.lower()))


def _walk(root: Tag, sink: BlockSink, limits: Limits) -> None:
    inline: list[str] = []

    def flush() -> bool:
        if inline:
            text = _flow_text("".join(inline))
            inline.clear()
            if text:
                return sink.add(Block(BlockKind.paragraph, text))
        return True

    # Entries are nodes to visit, or None: the end of a container, where loose text is flushed.
    stack: list[Tag | NavigableString | None] = [root]
    while stack:
        node = stack.pop()
        if node is None:
            if not flush():
                return
            continue
        if isinstance(node, NavigableString):
            if not isinstance(node, _SKIPPED_STRINGS):
                inline.append(str(node))
            continue
        name = node.name.lower() if node.name else ""
        block: Block | None = None
        if name in _HEADINGS:
            block = Block(
                BlockKind.heading,
                _flow_text(node.get_text()).replace("\n", " "),
                level=_HEADINGS[name],
            )
        elif name in _PARAGRAPHS:
            block = Block(BlockKind.paragraph, _flow_text(node.get_text()))
        elif name == "pre":
            block = Block(BlockKind.code, clean_code(node.get_text().replace(_BREAK, "\n")))
        elif name == "table":
            block = _table(node, limits, sink)
        elif name == "li":
            # The item's own text; nested lists inside it are visited as items of their own.
            nested = list(node.find_all(["ul", "ol"], recursive=False))
            for child in nested:
                child.extract()
            block = Block(BlockKind.list_item, _flow_text(node.get_text()))
            if not flush() or (block.text and not sink.add(block)):
                return
            stack.extend(reversed(nested))
            continue
        if block is not None:
            if not flush() or ((block.text or block.rows) and not sink.add(block)):
                return
            continue
        if name in _CONTAINERS or name == "[document]":
            if not flush():
                return
            stack.append(None)
        stack.extend(reversed(list(node.children)))  # type: ignore[arg-type]
    flush()


def _flow_text(text: str) -> str:
    """HTML text: whitespace runs become one space; only <br> breaks a line."""
    lines = (clean_inline(part) for part in text.split(_BREAK))
    return "\n".join(line for line in lines if line)


def _table(node: Tag, limits: Limits, sink: BlockSink) -> Block | None:
    rows: list[list[str]] = []
    for tr in node.find_all("tr"):
        if len(rows) >= limits.max_table_rows:
            sink.warn(f"A table longer than {limits.max_table_rows:,} rows was cut short.")
            break
        cells = tr.find_all(["th", "td"], recursive=False)[: limits.max_table_columns]
        texts = [
            _flow_text(cell.get_text()).replace("\n", " ")[: limits.max_cell_chars]
            for cell in cells
        ]
        if not any(texts):
            continue
        if not sink.add_cells(texts):
            break
        rows.append(texts)
    if not rows:
        return None
    width = max(len(row) for row in rows)
    if len(rows) == 1 or width == 1:
        # Layout tables and one-line tables read as text.
        text = "\n".join(" | ".join(cell for cell in row if cell) for row in rows)
        return Block(BlockKind.paragraph, clean_text(text))
    # The first row is the header, whether it is made of <th> cells or not.
    table = [row + [""] * (width - len(row)) for row in rows]
    header = table[0]
    for position, cell in enumerate(header):
        if not cell:
            header[position] = f"Column {position + 1}"
    caption = node.find("caption")
    text = clean_inline(caption.get_text()) if isinstance(caption, Tag) else ""
    return Block(BlockKind.table, text, rows=table)
