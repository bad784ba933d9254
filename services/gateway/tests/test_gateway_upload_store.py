"""Resumable uploads in the gateway's folder: chunks only at the offset, a repeated chunk
harmless, the finished file renamed in one step, complete only once handed over."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gateway.upload_store import ImportUploadStore, OffsetMismatch, TooLarge, UploadStore

LIMIT = 1000


def test_chunks_land_at_their_offset_and_the_last_one_renames_the_part(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    upload = store.open("alice", "image/jpeg", 10)
    assert not store.final(upload).exists()
    assert store.append(upload, 0, b"\xff\xd8\xff12", LIMIT) is False
    again = store.get(upload.id)
    assert again is not None and again.offset == 5 and not again.complete

    # the same chunk again (its answer was lost): accepted, nothing changes
    assert store.append(again, 0, b"\xff\xd8\xff12", LIMIT) is False
    assert store.get(upload.id).offset == 5  # type: ignore[union-attr]
    # a chunk past the offset (one was lost): refused with where the upload stands
    with pytest.raises(OffsetMismatch) as refused:
        store.append(again, 7, b"xyz", LIMIT)
    assert refused.value.offset == 5

    assert store.append(again, 5, b"34567", LIMIT) is True
    assert store.final(upload).read_bytes() == b"\xff\xd8\xff1234567"
    whole = store.get(upload.id)
    # every byte in, not handed over yet (the gateway stopped in between, say): not
    # complete, and the last chunk sent again asks for the handover again
    assert whole is not None and not whole.complete and whole.offset == 10
    assert store.append(whole, 5, b"34567", LIMIT) is True
    store.handed_over(whole)  # its blob is in colis-svc's bucket: the local file goes
    assert not store.final(upload).exists()
    done = store.get(upload.id)
    assert done is not None and done.complete and done.offset == 10
    assert store.append(done, 5, b"34567", LIMIT) is False


def test_old_leftovers_of_the_gateways_own_folder_are_swept(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    old = store.open("alice", "image/jpeg", 10)
    store.append(old, 0, b"\xff\xd8\xff", LIMIT)
    past = time.time() - 7200
    for path in store.folder.iterdir():
        os.utime(path, (past, past))
    fresh = store.open("alice", "image/jpeg", 10)
    imports = ImportUploadStore(tmp_path)
    old_import = imports.open("alice", "application/edifact", 10, "a.edi")
    for path in imports.final(old_import).parent.iterdir():
        os.utime(path, (past, past))
    fresh_import = imports.open("alice", "application/edifact", 10, "b.edi")
    # the old uploads' notes and parts, photo and import alike
    assert store.sweep(3600) == 4
    assert store.get(old.id) is None and store.get(fresh.id) is not None
    assert imports.get(old_import.id) is None and imports.get(fresh_import.id) is not None
    assert not imports.final(old_import).parent.exists()


def test_the_size_may_come_later_and_is_bounded(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    upload = store.open("alice", "image/jpeg", None)
    assert store.append(upload, 0, b"abc", LIMIT) is False
    with pytest.raises(TooLarge):
        store.append(upload, 3, b"x" * LIMIT, LIMIT)
    store.declare_size(upload, 5)
    with pytest.raises(TooLarge):
        store.append(upload, 3, b"xyz", LIMIT)
    assert store.append(upload, 3, b"de", LIMIT) is True


def test_the_task_is_kept_apart_and_ids_are_ours(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    upload = store.open("alice", "image/png", 3)
    store.bind(upload, "task-1")
    store.append(upload, 0, b"abc", LIMIT)  # finishing rewrites the note, not the task
    found = store.get(upload.id)
    assert found is not None and found.task_id == "task-1" and found.owner == "alice"
    assert store.get("../../etc/passwd") is None
    store.discard(upload.id)
    assert store.get(upload.id) is None and not any(store.folder.iterdir())
