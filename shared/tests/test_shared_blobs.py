"""The handover bucket on the real store: a put repeated after a lost answer changes
nothing, a name that is a path is never used, and the owner's sweeper finds old blobs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import Binary, ObjectId
from pymongo import AsyncMongoClient

from jauge_shared import blobs as blobs_module
from jauge_shared.blobs import BadBlobId, BlobBeingWritten, Blobs


async def test_a_blob_is_put_once_read_by_its_id_and_deleted(test_env: Any, tmp_path: Path) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    try:
        blobs = Blobs(client[f"{test_env.db_prefix}_colis"], "photo_uploads")
        data = bytes(range(256)) * 2000  # 512 KB: more than one GridFS chunk
        await blobs.put("a" * 32, data)
        await blobs.put("a" * 32, b"another try")  # a handover repeated: the first stays
        assert await blobs.read("a" * 32) == data
        source = tmp_path / "photo"
        source.write_bytes(b"\xff\xd8\xff photo")
        await blobs.put_file("b" * 32, source)
        assert await blobs.exists("b" * 32) and await blobs.read("b" * 32) == source.read_bytes()

        assert await blobs.read("../../etc/passwd") is None
        assert not await blobs.exists("../x")
        with pytest.raises(BadBlobId):
            await blobs.put("../x", b"x")
        with pytest.raises(BadBlobId):
            await blobs.put(".hidden", b"x")

        await blobs.files.update_one(
            {"_id": "a" * 32}, {"$set": {"uploadDate": datetime.now(UTC) - timedelta(days=2)}}
        )
        assert await blobs.older_than(86400) == ["a" * 32]
        await blobs.delete("a" * 32)
        await blobs.delete("a" * 32)  # already gone: nothing to do
        assert await blobs.read("a" * 32) is None and await blobs.older_than(0) == ["b" * 32]
    finally:
        await client.close()


async def test_chunks_of_a_try_cut_off_are_replaced_and_a_try_at_work_is_not_disturbed(
    test_env: Any, tmp_path: Path
) -> None:
    """GridFS writes the chunks, then the file's document: a try cut off in between left
    chunks that made every later try fail on their unique index, with no blob to read."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    try:
        blobs = Blobs(client[f"{test_env.db_prefix}_colis"], "photo_uploads")
        await blobs.put("a" * 32, b"first")  # the bucket and its indexes exist
        cut_off = ObjectId.from_datetime(datetime.now(UTC) - timedelta(minutes=5))
        await blobs.chunks.insert_one(
            {"_id": cut_off, "files_id": "c" * 32, "n": 0, "data": Binary(b"half a")}
        )
        source = tmp_path / "photo"
        source.write_bytes(b"\xff\xd8\xff the whole photo")
        await blobs.put_file("c" * 32, source)
        assert await blobs.read("c" * 32) == source.read_bytes()

        # chunks written a moment ago: another try is at work, it is not cut short
        await blobs.chunks.insert_one({"files_id": "d" * 32, "n": 0, "data": Binary(b"at work")})
        with pytest.raises(BlobBeingWritten):
            await blobs.put_file("d" * 32, source)
        assert await blobs.chunks.count_documents({"files_id": "d" * 32}) == 1
        # ... unless they are the caller's own, its put having failed: replaced at once
        await blobs.put_file("d" * 32, source, after_own_failure=True)
        assert await blobs.read("d" * 32) == source.read_bytes()

        # in one process, one put of an id at a time: a second one is told, not let in
        big = tmp_path / "big"
        big.write_bytes(bytes(range(256)) * 8192)  # 2 MB: several chunks
        first = asyncio.create_task(blobs.put_file("e" * 32, big))
        for _ in range(10_000):  # until the first put is writing
            if blobs_module._WRITING or first.done():
                break
            await asyncio.sleep(0)
        assert blobs_module._WRITING, "the first put ended before the second was tried"
        with pytest.raises(BlobBeingWritten):
            await blobs.put_file("e" * 32, big, after_own_failure=True)
        await first
        assert await blobs.read("e" * 32) == big.read_bytes()
    finally:
        await client.close()
