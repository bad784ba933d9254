"""GridFS on FerretDB against the local disk: one file written then read, p50 of N runs.

Measures the handover of issue 17, point 3: a parcel photo (400 KB) and a large upload
(4 MB) put in a GridFS bucket by one service and read back whole by another, against
the same bytes written to and read from a local file. Runs on a database of its own,
dropped at the end.

    JAUGE_MONGO_URL=mongodb://127.0.0.1:27017/ python bench/gridfs_handover.py [runs]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from uuid import uuid4

from gridfs import AsyncGridFSBucket
from pymongo import AsyncMongoClient

SIZES = {"400 KB": 400 * 1024, "4 MB": 4 * 1024 * 1024}


async def gridfs_once(bucket: AsyncGridFSBucket, data: bytes) -> tuple[float, float]:
    file_id = uuid4().hex
    t0 = time.perf_counter()
    await bucket.upload_from_stream_with_id(file_id, file_id, data)
    t1 = time.perf_counter()
    stream = await bucket.open_download_stream(file_id)
    back = await stream.read()
    t2 = time.perf_counter()
    assert back == data
    await bucket.delete(file_id)
    return t1 - t0, t2 - t1


def disk_once(folder: Path, data: bytes) -> tuple[float, float]:
    path = folder / uuid4().hex
    t0 = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    t1 = time.perf_counter()
    back = path.read_bytes()
    t2 = time.perf_counter()
    assert back == data
    path.unlink()
    return t1 - t0, t2 - t1


def p50_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


async def main(runs: int) -> None:
    url = os.environ.get("JAUGE_MONGO_URL", "mongodb://127.0.0.1:27017/")
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    db_name = f"bench_gridfs_{uuid4().hex[:8]}"
    bucket = AsyncGridFSBucket(client[db_name], bucket_name="handover")
    print(f"{'size':>7} {'where':>12} {'write p50':>10} {'read p50':>10} {'max w+r':>9}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for label, size in SIZES.items():
                data = os.urandom(size)
                await gridfs_once(bucket, data)  # warm-up: collections and indexes made
                g = [await gridfs_once(bucket, data) for _ in range(runs)]
                d = [disk_once(Path(tmp), data) for _ in range(runs)]
                for where, rows in (("GridFS", g), ("local disk", d)):
                    w = [r[0] for r in rows]
                    r_ = [r[1] for r in rows]
                    worst = max(a + b for a, b in rows) * 1000
                    print(
                        f"{label:>7} {where:>12} {p50_ms(w):>8.1f}ms {p50_ms(r_):>8.1f}ms"
                        f" {worst:>7.1f}ms"
                    )
    finally:
        await client.drop_database(db_name)
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
