"""The import page's files come through import-svc's own GridFS bucket, not a folder the
gateway writes: taken into uploads/<id>/ once, then claimed as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from import_svc.files import FileStore, receive_uploads
from jauge_shared.blobs import IMPORT_UPLOADS, Blobs


async def test_uploaded_files_are_taken_from_the_bucket_once(test_env: Any, tmp_path: Path) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    try:
        bucket = Blobs(client[f"{test_env.db_prefix}_import"], IMPORT_UPLOADS)
        upload_id, other = "a" * 32, "b" * 32
        for n, (name, data) in enumerate([("a.edi", b"UNA:+.? '"), ("b.edi", b"UNB+UNOC'")]):
            source = tmp_path / f"sent-{n}"
            source.write_bytes(data)
            await bucket.put_file(f"{upload_id}.{n}", source, filename=name, upload_id=upload_id)
        source.write_bytes(b"someone else's")
        await bucket.put_file(f"{other}.0", source, filename="c.edi", upload_id=other)
        files = FileStore(tmp_path / "data")

        await receive_uploads(files, bucket, [upload_id])
        assert sorted(p.name for p in files.uploads(upload_id).iterdir()) == ["a.edi", "b.edi"]
        assert (files.uploads(upload_id) / "b.edi").read_bytes() == b"UNB+UNOC'"
        assert await bucket.find(upload_id=upload_id) == []  # taken: import-svc's now
        assert await bucket.find(upload_id=other) == [(f"{other}.0", "c.edi")]  # not asked

        assert files.claim_uploads([upload_id], "job-1") == ["a.edi", "b.edi"]
        await receive_uploads(files, bucket, [upload_id])  # the job redone: nothing again
        assert files.claim_uploads([upload_id], "job-1") == []
        assert files.claimed("job-1") == ["a.edi", "b.edi"]
    finally:
        await client.close()
