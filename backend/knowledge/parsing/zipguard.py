"""Refuse zip bombs before a DOCX or XLSX is opened.

A zip's central directory declares every member's packed and unpacked size. Python's zipfile
stops reading a member at its declared size (and fails on a CRC mismatch), so checking the
declared sizes bounds what the DOCX and XLSX readers can ever unpack.
"""

from __future__ import annotations

import io
import struct
import zipfile

from backend.knowledge.parsing.document import Limits, ParseError

_MB = 1024 * 1024


def declared_entries(data: bytes) -> int | None:
    """The number of members a zip's end-of-central-directory record declares, read without
    building the member list (zipfile holds every member in memory while opening)."""
    tail_start = max(0, len(data) - (65_535 + 22))
    end = data.rfind(b"PK\x05\x06", tail_start)
    if end < 0 or end + 22 > len(data):
        return None
    entries = struct.unpack_from("<H", data, end + 10)[0]
    if entries != 0xFFFF:
        return int(entries)
    # Zip64: the locator just before points to the zip64 end record with 8-byte counts.
    locator = end - 20
    if locator < 0 or data[locator : locator + 4] != b"PK\x06\x07":
        return None
    record = struct.unpack_from("<Q", data, locator + 8)[0]
    if record + 40 > len(data) or data[record : record + 4] != b"PK\x06\x06":
        return None
    return int(struct.unpack_from("<Q", data, record + 32)[0])


def check_member_count(data: bytes, limits: Limits) -> None:
    """Refuse an archive that declares more members than a document has, before it is opened."""
    entries = declared_entries(data)
    if entries is not None and entries > limits.max_zip_members:
        raise ParseError(
            f"The file holds {entries:,} parts, more than the {limits.max_zip_members:,} "
            "a document may have; it looks like a zip bomb."
        )


def check_zip(data: bytes, limits: Limits, *, streamed: tuple[str, ...] = ()) -> None:
    """Raise ParseError if the archive is damaged, has too many members, or unpacks to too much.

    XML parts are read into memory whole, so each is held to `max_xml_part_bytes`, except
    those whose names start with one of `streamed`.
    """
    check_member_count(data, limits)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ParseError("The file is a damaged ZIP archive and could not be opened.") from exc
    if len(infos) > limits.max_zip_members:
        raise ParseError(
            f"The file holds {len(infos):,} parts, more than the {limits.max_zip_members:,} "
            "a document may have; it looks like a zip bomb."
        )
    unpacked = sum(info.file_size for info in infos)
    packed = sum(info.compress_size for info in infos)
    if unpacked > limits.max_unpacked_bytes:
        raise ParseError(
            f"The file expands to more than {limits.max_unpacked_bytes // _MB} MB when "
            "unpacked; it looks like a zip bomb."
        )
    ratio = unpacked / max(packed, 1)
    if unpacked > limits.ratio_check_min_bytes and ratio > limits.max_compression_ratio:
        raise ParseError(
            f"The file expands to {unpacked // _MB} MB when unpacked, {ratio:,.0f} times its "
            "packed size; it looks like a zip bomb."
        )
    for info in infos:
        if (
            info.filename.endswith((".xml", ".rels"))
            and info.file_size > limits.max_xml_part_bytes
            and not info.filename.startswith(streamed)
        ):
            raise ParseError(
                f"One part of the document is {info.file_size // _MB} MB of markup, more than "
                f"the {limits.max_xml_part_bytes // _MB} MB Parley reads; split the document "
                "into smaller files."
            )
        if info.flag_bits & 0x1:
            raise ParseError("The document is password-protected; upload an unprotected copy.")
