"""Storage of original files (uploads, fetched pages), kept so documents can be re-processed.

Keys are relative, slash-separated names built by Parley from ids, such as
"{tenant_id}/{document_id}/original". `LocalDiskStorage` is the default backend; another one
(an object store) only has to follow the `Storage` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from backend.errors import NotFound, PayloadTooLarge

# Segments of letters, digits, "_", "-" and ".", not starting with "." (no "..", no hidden
# files, and never the name of a temporary file, which starts with one).
_KEY = re.compile(
    r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}(?:/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}){0,15}"
)
_WRITE_SIZE = 256 * 1024  # bytes gathered before each write in a worker thread
_READ_SIZE = 256 * 1024


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str


class InvalidKey(ValueError):
    """A key that could name something outside the storage root, or is not a key at all."""


class ObjectNotFound(NotFound):
    pass


class TooLarge(PayloadTooLarge):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"The file is larger than the {_describe_size(max_bytes)} limit.")
        self.max_bytes = max_bytes


class Storage(Protocol):
    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int
    ) -> StoredObject:
        """Store `chunks` under `key`, replacing any object there only once all are written.

        Raises TooLarge (and stores nothing) past `max_bytes`.
        """
        ...

    async def get(self, key: str) -> bytes: ...

    def open_stream(self, key: str) -> AsyncIterator[bytes]:
        """The object in chunks (an async generator: iterate, don't await)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing one is not an error."""
        ...

    async def exists(self, key: str) -> bool: ...


def validate_key(key: str) -> str:
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise InvalidKey(f"{key!r} is not a valid storage key.")
    return key


class LocalDiskStorage:
    """Objects as files under `root`: written to a temporary file, then renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, key: str) -> Path:
        path = self.root / validate_key(key)
        # The key pattern already rules out "..", this guards against a symlink in the tree.
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise InvalidKey(f"{key!r} is not a valid storage key.")
        return path

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int
    ) -> StoredObject:
        path = self.path_for(key)
        file, temporary = await asyncio.to_thread(_open_temporary, path)
        try:
            size, digest = await _write_chunks(file, chunks, max_bytes)
        except BaseException:
            # Synchronous on purpose: this also runs when the task is being cancelled.
            _discard(file, temporary)
            raise
        # Once started, the commit finishes (or cleans up) in its thread even if cancelled.
        await asyncio.to_thread(_commit, file, temporary, path)
        return StoredObject(key=key, size=size, sha256=digest)

    async def get(self, key: str) -> bytes:
        path = self.path_for(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"The stored file {key} does not exist.") from exc

    async def open_stream(self, key: str) -> AsyncIterator[bytes]:
        path = self.path_for(key)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"The stored file {key} does not exist.") from exc
        try:
            while chunk := await asyncio.to_thread(file.read, _READ_SIZE):
                yield chunk
        finally:
            file.close()

    async def delete(self, key: str) -> None:
        path = self.path_for(key)
        await asyncio.to_thread(_remove, path, self.root)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path_for(key).is_file)


async def _write_chunks(
    file: IO[bytes], chunks: AsyncIterable[bytes], max_bytes: int
) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    pending = bytearray()
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(max_bytes)
        digest.update(chunk)
        pending += chunk
        if len(pending) >= _WRITE_SIZE:
            await asyncio.to_thread(file.write, bytes(pending))
            pending.clear()
    if pending:
        await asyncio.to_thread(file.write, bytes(pending))
    return size, digest.hexdigest()


def _open_temporary(path: Path) -> tuple[IO[bytes], Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    return os.fdopen(fd, "wb"), Path(name)


def _commit(file: IO[bytes], temporary: Path, path: Path) -> None:
    try:
        file.flush()
        os.fsync(file.fileno())
        file.close()
        os.replace(temporary, path)
    except BaseException:
        _discard(file, temporary)
        raise
    _sync_directory(path.parent)


def _discard(file: IO[bytes], temporary: Path) -> None:
    file.close()
    temporary.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable; not every platform can open a directory."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: Path, root: Path) -> None:
    path.unlink(missing_ok=True)
    # Drop the directories the key made, once empty, up to the root.
    parent = path.parent
    while parent != root and parent.is_relative_to(root):
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def _describe_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.3g} MB"
    if size >= 1024:
        return f"{size / 1024:.3g} KB"
    return f"{size} bytes"
