"""An in-memory stand-in for a GridFS bucket (jauge_shared.blobs.Blobs), for tests that
drive the gateway's app without a store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from jauge_shared.blobs import BLOB_ID, checked


class MemoryBlobs:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.names: dict[str, str] = {}
        self.failures = 0  # the next puts that fail, as a store away would
        self.failure: Exception = ConnectionError("store away")
        # set: puts wait for it, as on a store that takes the bytes and answers late
        self.gate: asyncio.Event | None = None

    def _maybe_fail(self) -> None:
        if self.failures:
            self.failures -= 1
            raise self.failure

    async def put(self, blob_id: str, data: bytes, **metadata: Any) -> None:
        self._maybe_fail()
        self.blobs.setdefault(checked(blob_id), data)

    async def put_file(
        self,
        blob_id: str,
        path: Path,
        filename: str | None = None,
        *,
        after_own_failure: bool = False,
        **metadata: Any,
    ) -> None:
        self._maybe_fail()
        if self.gate is not None:
            await self.gate.wait()
        self.names[blob_id] = filename or blob_id
        self.blobs.setdefault(checked(blob_id), await asyncio.to_thread(path.read_bytes))

    async def exists(self, blob_id: str) -> bool:
        return blob_id in self.blobs

    async def read(self, blob_id: str) -> bytes | None:
        return self.blobs.get(blob_id) if BLOB_ID.fullmatch(blob_id) else None

    async def delete(self, blob_id: str | None) -> None:
        self.blobs.pop(blob_id or "", None)


def memory_buckets() -> Any:
    """A `gateway.handover.Buckets` of in-memory buckets."""
    from gateway.handover import Buckets

    return Buckets(MemoryBlobs(), MemoryBlobs(), MemoryBlobs())  # type: ignore[arg-type]
