"""Chunking: structure, heading paths, token limits, overlap, tables, determinism and cost."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from backend.knowledge.chunking import Chunk, ChunkKind, chunk_document, content_hash
from backend.knowledge.embeddings import LocalMiniLMProvider, get_embedding_provider
from backend.knowledge.parsing import Block, BlockKind, DocumentType, ParsedDocument, parse_document


def words(text: str) -> int:
    """A stand-in tokenizer: one token per word."""
    return len(text.split())


@pytest.fixture(scope="session")
def local(tmp_path_factory: pytest.TempPathFactory) -> LocalMiniLMProvider:
    # The same cache directory as the embedding tests: one model per test session.
    cache = tmp_path_factory.getbasetemp() / "knowledge-models"
    provider = get_embedding_provider("local:all-MiniLM-L6-v2", cache_dir=cache)
    assert isinstance(provider, LocalMiniLMProvider)
    return provider


def doc_of(*blocks: Block, kind: DocumentType = DocumentType.markdown) -> ParsedDocument:
    return ParsedDocument(type=kind, title=None, blocks=list(blocks))


def heading(text: str, level: int) -> Block:
    return Block(BlockKind.heading, text, level=level)


def para(text: str, page: int | None = None) -> Block:
    return Block(BlockKind.paragraph, text, page=page)


def sentences(prefix: str, count: int) -> str:
    return " ".join(f"{prefix} sentence number {i} has seven words." for i in range(count))


def chunk(
    doc: ParsedDocument, count: Callable[[str], int] = words, size: int = 40, overlap: int = 0
) -> list[Chunk]:
    return chunk_document(doc, count_tokens=count, chunk_tokens=size, overlap_tokens=overlap)


def test_chunks_carry_their_heading_path() -> None:
    source = b"""# Guide
Intro text.
## Install
Install text.
### On Linux
Linux text.
## Configure
Configure text.
# Appendix
Appendix text.
"""
    chunks = chunk(parse_document(source, filename="guide.md"))
    assert [(c.heading_path, c.text) for c in chunks] == [
        (["Guide"], "Intro text."),
        (["Guide", "Install"], "Install text."),
        (["Guide", "Install", "On Linux"], "Linux text."),
        (["Guide", "Configure"], "Configure text."),
        (["Appendix"], "Appendix text."),
    ]
    assert chunks[2].embed_text == "Guide > Install > On Linux\n\nLinux text."
    assert [c.ordinal for c in chunks] == list(range(5))


def test_small_blocks_of_a_section_share_a_chunk() -> None:
    doc = doc_of(
        heading("Shipping", 1),
        para("Parcels leave daily."),
        Block(BlockKind.list_item, "Tracking by email"),
        Block(BlockKind.list_item, "Signature on delivery"),
        para("Returns are free."),
    )
    (only,) = chunk(doc)
    assert only.text == (
        "Parcels leave daily.\n\n- Tracking by email\n- Signature on delivery\n\nReturns are free."
    )
    assert only.kind is ChunkKind.text
    assert only.token_count == words(only.embed_text)


def test_long_paragraphs_split_at_sentence_ends() -> None:
    text = sentences("A", 20)
    chunks = chunk(doc_of(heading("Policy", 1), para(text)), size=30)
    assert len(chunks) > 3
    for c in chunks:
        assert c.text.endswith("words.")
        assert c.token_count <= 30
    assert " ".join(c.text for c in chunks) == text


def test_overlap_repeats_the_last_sentences_within_a_section() -> None:
    text = sentences("B", 30)
    chunks = chunk(doc_of(heading("Policy", 1), para(text)), size=40, overlap=10)
    assert len(chunks) > 3
    for before, after in itertools.pairwise(chunks):
        last = before.text.rsplit(". ", 1)[-1]
        assert after.text.startswith(last)  # one sentence (7 words) of overlap
        assert words(last) <= 10
    # Without the overlap, the chunks put back together are the text again.
    seen: list[str] = []
    for c in chunks:
        for sentence in c.text.split(". "):
            if sentence.rstrip(".") not in seen:
                seen.append(sentence.rstrip("."))
    assert ". ".join(seen) + "." == text


def test_overlap_stays_inside_a_section() -> None:
    doc = doc_of(
        heading("One", 1), para(sentences("C", 12)), heading("Two", 1), para("Alone here.")
    )
    chunks = chunk(doc, size=40, overlap=10)
    assert chunks[-1].heading_path == ["Two"]
    assert chunks[-1].text == "Alone here."


def test_every_chunk_fits_the_models_tokens(local: LocalMiniLMProvider) -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    parts = [readme.read_bytes().decode()] if readme.exists() else []
    parts += [
        "# Long words\n\n" + "Pneumonoultramicroscopicsilicovolcanoconiosis " * 200,
        "# No spaces\n\n" + "x" * 20_000,
        "# Code\n\n```\n"
        + "\n".join(f"print('line {i}', {i} * {i})" for i in range(300))
        + "\n```",
        "# Table\n\n| a | b |\n|---|---|\n"
        + "".join(f"| row {i} | {'value ' * 40} |\n" for i in range(30)),
        "# " + "Very long heading " * 100 + "\n\nUnder it.",
        "# Mixed\n\n" + "Ünïcödé, emoji 🚀 and 東京 text. " * 400,
    ]
    doc = parse_document("\n\n".join(parts).encode(), filename="all.md")
    for size, overlap in ((32, 0), (64, 32), (128, 32), (254, 127)):
        chunks = chunk(doc, local.count_tokens, size=size, overlap=overlap)
        assert chunks
        for c in chunks:
            assert c.token_count == local.count_tokens(c.embed_text)
            assert c.token_count <= size, (size, c.embed_text[:80])
            assert c.text.strip()


def test_small_table_stays_whole() -> None:
    table = Block(
        BlockKind.table, rows=[["City", "Phone"], ["Berlin", "+49 30"], ["Lisbon", "+351 21"]]
    )
    (only,) = chunk(doc_of(heading("Offices", 1), table))
    assert only.kind is ChunkKind.table
    assert only.text == "| City | Phone |\n| --- | --- |\n| Berlin | +49 30 |\n| Lisbon | +351 21 |"
    assert only.embed_text.startswith("Offices\n\n| City | Phone |")


def big_table() -> Block:
    rows = [["Product", "Price", "Colour"]]
    rows += [[f"Item {i}", f"{10 + i} EUR", f"shade {i % 7}"] for i in range(100)]
    return Block(BlockKind.table, rows=rows)


def test_large_tables_split_by_rows_with_the_header_repeated() -> None:
    chunks = chunk(doc_of(heading("Catalogue", 2), big_table()), size=60)
    assert len(chunks) > 5
    seen: list[str] = []
    for c in chunks:
        assert c.kind is ChunkKind.table
        lines = c.text.split("\n")
        assert lines[:2] == ["| Product | Price | Colour |", "| --- | --- | --- |"]
        assert c.token_count <= 60
        seen += lines[2:]
    assert seen == [f"| Item {i} | {10 + i} EUR | shade {i % 7} |" for i in range(100)]


def test_a_row_wider_than_a_chunk_becomes_column_value_lines() -> None:
    rows = [["Name", "Notes"], ["Ana", "short"], ["Ben", "long note " * 40]]
    chunks = chunk(doc_of(Block(BlockKind.table, rows=rows)), size=30)
    assert chunks[0].text == "| Name | Notes |\n| --- | --- |\n| Ana | short |"
    assert chunks[1].text.startswith("Name: Ben\nNotes: long note long note")
    assert all(c.token_count <= 30 and c.kind is ChunkKind.table for c in chunks)


def test_a_question_about_a_cell_finds_its_row(local: LocalMiniLMProvider) -> None:
    products = [
        ("Walnut bookshelf", "349 EUR", "Solid walnut, five shelves"),
        ("Desk lamp", "24 EUR", "LED, warm white"),
        ("Office chair", "149 EUR", "Mesh back, adjustable arms"),
        ("Standing desk", "499 EUR", "Electric, memory presets"),
        ("Monitor arm", "39 EUR", "Gas spring, VESA 100"),
        ("Filing cabinet", "129 EUR", "Steel, three drawers"),
        ("Whiteboard", "59 EUR", "Magnetic, 120 x 90 cm"),
        ("Coat rack", "45 EUR", "Oak, six hooks"),
        ("Paper shredder", "89 EUR", "Cross-cut, 20 litres"),
        ("Coffee machine", "229 EUR", "Bean to cup, milk frother"),
        ("Printer", "179 EUR", "Colour laser, duplex"),
        ("Headset", "69 EUR", "Noise cancelling, USB-C"),
    ]
    rows = [["Product", "Price", "Description"], *[list(p) for p in products]]
    doc = doc_of(heading("Office furniture price list", 1), Block(BlockKind.table, rows=rows))
    chunks = chunk(doc, local.count_tokens, size=48)
    assert len(chunks) >= 4
    vectors = np.array(local.embed_sync([c.embed_text for c in chunks]))
    for name, price, _ in (products[0], products[9], products[5]):
        (query,) = local.embed_sync([f"How much does the {name.lower()} cost?"])
        best = chunks[int(np.argmax(vectors @ np.array(query)))]
        row = next(line for line in best.text.split("\n") if name in line)
        assert price in row
        assert best.text.startswith("| Product | Price | Description |")


def test_same_input_same_hashes_and_local_changes_stay_local() -> None:
    blocks = [heading("A", 1), para(sentences("D", 12)), heading("B", 1), para(sentences("E", 12))]
    first = chunk(doc_of(*blocks), size=40, overlap=8)
    again = chunk(doc_of(*blocks), size=40, overlap=8)
    assert [c.content_hash for c in first] == [c.content_hash for c in again]
    assert len({c.content_hash for c in first}) == len(first)
    changed = [*blocks[:3], para(sentences("E", 12).replace("number 11", "number eleven"))]
    edited = chunk(doc_of(*changed), size=40, overlap=8)
    before = {c.content_hash for c in first}
    after = {c.content_hash for c in edited}
    assert len(before - after) == 1
    assert len(after - before) == 1


def test_hash_covers_the_heading_path() -> None:
    one = chunk(doc_of(heading("Pricing", 1), para("Ten euros.")))[0]
    two = chunk(doc_of(heading("Refunds", 1), para("Ten euros.")))[0]
    assert one.text == two.text
    assert one.content_hash != two.content_hash
    assert one.content_hash == content_hash("Ten  euros.", ["Pricing"])


def test_pages_and_code_kinds() -> None:
    doc = doc_of(
        para("On the first page.", page=1),
        para("On the second page.", page=2),
        heading("Example", 2),
        Block(BlockKind.code, "make install\nmake test"),
        kind=DocumentType.pdf,
    )
    first, code = chunk(doc)
    assert first.page == 1
    assert code.kind is ChunkKind.code
    assert code.text == "make install\nmake test"


def test_a_huge_word_is_cut_into_bounded_pieces(local: LocalMiniLMProvider) -> None:
    word = "abcdefghij" * 10_000
    chunks = chunk(doc_of(para(word)), local.count_tokens, size=64)
    assert "".join(c.text for c in chunks) == word
    assert all(len(c.text) <= 64 * 16 for c in chunks)


def test_ten_megabytes_on_one_line_is_linear() -> None:
    line = b"Ten megabytes of text on a single line keep the chunker busy. " * 165_000
    doc = parse_document(line, filename="dump.txt")
    counted = 0

    def counting(text: str) -> int:
        nonlocal counted
        counted += len(text)
        return words(text)

    started = time.perf_counter()
    chunks = chunk(doc, counting, size=200, overlap=20)
    assert time.perf_counter() - started < 20
    assert all(c.token_count <= 200 for c in chunks)
    assert len(chunks) > 8_000
    assert counted < 4 * len(line)  # each piece is counted a bounded number of times


def test_one_megabyte_line_with_the_model_tokenizer(local: LocalMiniLMProvider) -> None:
    line = ("Sentences of a huge single-line page are split and packed. " * 17_000).encode()
    doc = parse_document(line)
    started = time.perf_counter()
    chunks = chunk(doc, local.count_tokens, size=254, overlap=30)
    assert time.perf_counter() - started < 15
    assert max(c.token_count for c in chunks) <= 254


@pytest.mark.parametrize(("size", "overlap"), [(8, 0), (64, 33), (64, -1)])
def test_settings_are_checked(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match=r"chunk_tokens|overlap_tokens"):
        chunk(doc_of(para("x")), size=size, overlap=overlap)
