"""Text clean-up between parsing and chunking: one form for every source.

Unicode is composed (NFC); control characters, zero-width characters, soft hyphens and byte-order
marks go; non-breaking and other unusual spaces become plain spaces; runs of spaces collapse;
line ends become \\n and more than one blank line collapses to one. Every step is a single pass
over the text, so a 10 MB line costs no more than 10 MB of lines.
"""

from __future__ import annotations

import re
import unicodedata

# C0/C1 control characters other than tab and newline, zero-width characters, the soft hyphen
# and the byte-order mark.
_DROP = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b-\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_TRAILING = re.compile(r" *\n *")
_BLANK_LINES = re.compile(r"\n{3,}")
_ANY_WHITESPACE = re.compile(r"\s+")
# A word broken over two lines with a hyphen, as PDFs print them: "exam-\nple".
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")


def clean_text(text: str) -> str:
    """Clean text that keeps its line structure (paragraphs, code)."""
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n")
    text = text.replace("\u2029", "\n\n")
    text = _DROP.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = _SPACES.sub(" ", text)
    text = _TRAILING.sub("\n", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def clean_code(text: str) -> str:
    """Clean a code block: keep indentation, drop control characters and trailing blanks."""
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _DROP.sub("", text).replace("\t", "    ")
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def clean_inline(text: str) -> str:
    """Clean text that is one line: a heading, a table cell, a list item."""
    if not text:
        return ""
    text = _DROP.sub("", text)
    text = unicodedata.normalize("NFC", text)
    return _ANY_WHITESPACE.sub(" ", text).strip()


def join_broken_words(text: str) -> str:
    """Undo hyphenation at line ends ("exam-\\nple" -> "example")."""
    return _HYPHEN_BREAK.sub(r"\1\2", text)
