"""Storage of originals on local disk: streaming, atomic replacement, limits and key safety."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from backend.knowledge.storage import (
    InvalidKey,
    LocalDiskStorage,
    ObjectNotFound,
    Storage,
    TooLarge,
)

KEY = "0b7c1f0e-tenant/5d2a-document/original"


async def chunks_of(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def failing_after(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    raise ConnectionResetError("the client went away")


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


@pytest.fixture
def storage(tmp_path: Path) -> LocalDiskStorage:
    return LocalDiskStorage(tmp_path / "originals")


def test_local_disk_storage_is_a_storage(storage: LocalDiskStorage) -> None:
    backend: Storage = storage
    assert backend is storage


async def test_round_trip(storage: LocalDiskStorage) -> None:
    parts = [os.urandom(100_000) for _ in range(7)]
    data = b"".join(parts)
    stored = await storage.put_stream(KEY, chunks_of(parts), max_bytes=len(data))
    assert (stored.key, stored.size, stored.sha256) == (
        KEY,
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert await storage.exists(KEY)
    assert await storage.get(KEY) == data
    streamed = [chunk async for chunk in storage.open_stream(KEY)]
    assert b"".join(streamed) == data
    assert len(streamed) > 1
    assert files_under(storage.root) == [KEY]

    await storage.delete(KEY)
    assert not await storage.exists(KEY)
    assert list(storage.root.iterdir()) == []  # the key's directories went with it
    await storage.delete(KEY)  # deleting again is fine


async def test_empty_object(storage: LocalDiskStorage) -> None:
    stored = await storage.put_stream("t/d/original", chunks_of([]), max_bytes=10)
    assert stored.size == 0
    assert await storage.get("t/d/original") == b""


async def test_put_replaces_the_object_atomically(storage: LocalDiskStorage) -> None:
    await storage.put_stream(KEY, chunks_of([b"first version"]), max_bytes=1000)
    await storage.put_stream(KEY, chunks_of([b"second"]), max_bytes=1000)
    assert await storage.get(KEY) == b"second"
    assert files_under(storage.root) == [KEY]


async def test_too_large_stores_nothing_and_leaves_no_partial_file(
    storage: LocalDiskStorage,
) -> None:
    await storage.put_stream(KEY, chunks_of([b"kept"]), max_bytes=1000)
    parts = [b"x" * 400_000] * 5  # more than one write reaches the disk before the limit
    with pytest.raises(TooLarge) as too_large:
        await storage.put_stream(KEY, chunks_of(parts), max_bytes=1_048_576)
    assert too_large.value.detail == "The file is larger than the 1 MB limit."
    assert too_large.value.status_code == 413
    assert await storage.get(KEY) == b"kept"
    assert files_under(storage.root) == [KEY]

    with pytest.raises(TooLarge):
        await storage.put_stream("t/new/original", chunks_of(parts), max_bytes=1_048_576)
    assert not await storage.exists("t/new/original")
    assert files_under(storage.root) == [KEY]


async def test_failed_source_stream_leaves_no_partial_file(storage: LocalDiskStorage) -> None:
    with pytest.raises(ConnectionResetError):
        await storage.put_stream(KEY, failing_after([b"y" * 300_000]), max_bytes=10**7)
    assert files_under(storage.root) == []


async def test_missing_object(storage: LocalDiskStorage) -> None:
    with pytest.raises(ObjectNotFound):
        await storage.get("t/d/original")
    with pytest.raises(ObjectNotFound):
        async for _ in storage.open_stream("t/d/original"):
            pass
    assert not await storage.exists("t/d/original")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "../escape",
        "t/../../escape",
        "t/./d",
        "/etc/passwd",
        "t//d",
        "t/d/",
        "t\\..\\d",
        "t/d\0/original",
        "C:/windows",
        ".hidden/original",
        "t/.original.abc.part",
        "t/d/original\n",
        "a" * 129,
    ],
)
async def test_unsafe_keys_are_refused(storage: LocalDiskStorage, key: str) -> None:
    with pytest.raises(InvalidKey):
        await storage.put_stream(key, chunks_of([b"x"]), max_bytes=10)
    with pytest.raises(InvalidKey):
        await storage.get(key)
    with pytest.raises(InvalidKey):
        await storage.exists(key)
    with pytest.raises(InvalidKey):
        await storage.delete(key)
    with pytest.raises(InvalidKey):
        async for _ in storage.open_stream(key):
            pass
    assert not storage.root.exists() or files_under(storage.root) == []


async def test_symlink_out_of_the_root_is_refused(
    storage: LocalDiskStorage, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    storage.root.mkdir()
    (storage.root / "t").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidKey):
        await storage.put_stream("t/original", chunks_of([b"x"]), max_bytes=10)
    assert list(outside.iterdir()) == []
