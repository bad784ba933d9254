"""An import past its deadline never moves an agent's uploaded files into the shared
inbox (issue 15): uploads go to errors/ with a note, inbox files back to the inbox.

Before, every unprocessed file went to `inbox/<kind>/`, where the next import of anyone
read it: an agent's private upload became everybody's (on the real store).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from import_svc.files import FileStore
from import_svc.lock import ImportLock
from import_svc.repository import ImportRepository, JobState
from import_svc.service import ImportService
from jauge_shared.contracts import ImportFinished, ImportKind, Message, RequestImport

START = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


async def run_until_expired(
    test_env: Any, root: Path, job_id: str, upload_ids: list[str]
) -> list[Message]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    repo = ImportRepository(client, f"{test_env.db_prefix}_import")
    now = [START]
    emitted: list[Message] = []

    async def emit(message: Message) -> None:
        emitted.append(message)

    files = FileStore(root)
    files.ensure_layout()
    service = ImportService(
        repo,
        ImportLock(repo.lock, lease_s=30),
        files,
        emit,
        deadline_s=60,
        max_file_bytes=1 << 20,
        clock=lambda: now[0],
    )
    try:
        await service.request(
            RequestImport(
                producer="test",
                job_id=job_id,
                kind=ImportKind.EDI,
                user_id="alice",
                upload_ids=upload_ids,
                occurred_at=START,
            )
        )
        job = await repo.get_job(job_id)
        assert job is not None and job["state"] == JobState.RUNNING.value
        now[0] = START + timedelta(seconds=61)  # no file was processed meanwhile
        await service.schedule()
        job = await repo.get_job(job_id)
        assert job is not None and job["state"] == JobState.FAILED.value
    finally:
        await client.close()
    return emitted


async def test_an_expired_import_of_uploads_never_puts_them_in_the_shared_inbox(
    test_env: Any, tmp_path: Path
) -> None:
    upload = tmp_path / "uploads" / "0123456789abcdef0123456789abcdef"
    upload.mkdir(parents=True)
    for name in ("privee-1.edi", "privee-2.edi"):
        (upload / name).write_bytes(b"UNB+UNOC:3+S+R+240101:1200+1'")

    emitted = await run_until_expired(test_env, tmp_path, "job-expired-upload", [upload.name])

    assert not any((tmp_path / "inbox" / "edi").iterdir())
    errors = tmp_path / "errors" / "edi"
    for name in ("privee-1.edi", "privee-2.edi"):
        assert (errors / name).exists()
        note = (errors / f"{name}.error.txt").read_text(encoding="utf-8")
        assert note.startswith("Délai dépassé (60 s) avant la lecture de ce fichier envoyé")
    finished = [m for m in emitted if isinstance(m, ImportFinished)]
    assert finished and finished[0].error == (
        "Délai dépassé (60 s) : 2 fichier(s) non traité(s), à envoyer de nouveau"
    )


async def test_an_expired_import_of_the_inbox_puts_its_files_back(
    test_env: Any, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox" / "edi"
    inbox.mkdir(parents=True)
    (inbox / "commun.edi").write_bytes(b"UNB+UNOC:3+S+R+240101:1200+1'")

    emitted = await run_until_expired(test_env, tmp_path, "job-expired-inbox", [])

    assert sorted(p.name for p in inbox.iterdir()) == ["commun.edi"]
    finished = [m for m in emitted if isinstance(m, ImportFinished)]
    assert finished and "remis dans la boîte de réception" in (finished[0].error or "")
