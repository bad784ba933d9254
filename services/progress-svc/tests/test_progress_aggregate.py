"""The aggregation rules of DESIGN.md, on the pure functions."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from jauge_shared.contracts import (
    ColisOperation,
    ColisStepChanged,
    FileImported,
    ImportFinished,
    ImportKind,
    ImportQueued,
    ImportStarted,
    ImportStatus,
    TaskStatus,
    stable_event_id,
)
from progress_svc.aggregate import (
    ItemsStillInFlightError,
    apply_event,
    apply_events,
    public_view,
)

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def started(job: str = "j1", total: int = 3) -> ImportStarted:
    return ImportStarted(
        producer="t",
        job_id=job,
        kind=ImportKind.EDI,
        user_id="alice",
        title="Import",
        total=total,
        occurred_at=T0,
    )


def file(job: str, name: str, ok: bool = True, second: int = 1) -> FileImported:
    return FileImported(
        event_id=stable_event_id(job, "file", name),
        producer="t",
        job_id=job,
        item=name,
        ok=ok,
        error=None if ok else "Fichier vide",
        occurred_at=T0 + timedelta(seconds=second),
    )


def finished(job: str = "j1") -> ImportFinished:
    return ImportFinished(
        producer="t",
        job_id=job,
        status=ImportStatus.COMPLETED,
        occurred_at=T0 + timedelta(seconds=9),
    )


def run(events: list) -> dict | None:
    doc = None
    for event in events:
        new = apply_event(doc, event)
        doc = new if new is not None else doc
    return doc


def test_a_clean_import_counts_every_file_and_completes_once() -> None:
    doc = run([started(), file("j1", "a"), file("j1", "b", ok=False), file("j1", "c"), finished()])
    assert doc is not None
    assert (doc["status"], doc["processed"], doc["failed"], doc["total"]) == ("completed", 3, 1, 3)
    assert doc["percent"] == 100.0
    assert doc["message"] == "Import terminé : 3 fichiers traités, 1 en erreur"
    assert doc["errors"][0]["item"] == "b"
    assert doc["duration_s"] == 9.0
    assert doc["seq"] == 5


def test_a_duplicate_changes_nothing() -> None:
    doc = run([started(), file("j1", "a")])
    assert apply_event(doc, file("j1", "a")) is None


def test_processed_never_exceeds_total() -> None:
    doc = run([started(total=1), file("j1", "a"), file("j1", "b")])
    assert doc is not None and doc["processed"] == 1


def test_nothing_changes_after_the_terminal_status() -> None:
    doc = run([started(total=2), file("j1", "a"), finished()])
    assert apply_event(doc, file("j1", "b")) is None
    assert apply_event(doc, finished()) is None


def test_a_file_that_overtakes_the_start_is_kept() -> None:
    doc = run([file("j1", "a"), started(total=2), file("j1", "b"), finished()])
    assert doc is not None
    assert (doc["processed"], doc["total"], doc["owner"]) == (2, 2, "alice")


def test_queued_then_started() -> None:
    queued = ImportQueued(
        producer="t",
        job_id="j1",
        kind=ImportKind.EDI,
        user_id="alice",
        title="Import",
        position=2,
        occurred_at=T0,
    )
    doc = run([queued])
    assert doc is not None and (doc["status"], doc["queue_position"]) == ("queued", 2)
    doc = run([queued, started()])
    assert doc is not None and (doc["status"], doc["queue_position"]) == ("running", None)


@given(st.permutations(range(8)), st.lists(st.integers(0, 7), max_size=8))
def test_any_order_and_duplicates_give_the_clean_result(
    order: list[int], repeats: list[int]
) -> None:
    files = [file("j1", f"f{i}", ok=i % 3 != 0, second=i + 1) for i in range(8)]
    clean = run([started(total=8), *files, finished()])
    shuffled = [files[i] for i in order] + [files[i] for i in repeats]
    messy = run([started(total=8), *shuffled, finished()])
    assert clean is not None and messy is not None
    for key in ("status", "processed", "failed", "total", "percent"):
        assert messy[key] == clean[key]


def step(seq: int, status: TaskStatus, percent: int) -> ColisStepChanged:
    return ColisStepChanged(
        producer="t",
        job_id="t1",
        task_id="t1",
        user_id="bob",
        lot_id="L1",
        operation=ColisOperation.CREATE,
        status=status,
        step=status.value,
        percent=percent,
        seq=seq,
        occurred_at=T0 + timedelta(seconds=seq),
    )


def test_a_late_step_never_moves_a_task_backwards() -> None:
    steps = [
        step(0, TaskStatus.PENDING, 0),
        step(1, TaskStatus.PROCESSING, 10),
        step(2, TaskStatus.VALIDATION, 20),
        step(3, TaskStatus.COMPLETED, 100),
    ]
    for _ in range(20):
        shuffled = steps[:]
        random.shuffle(shuffled)
        doc = run(shuffled + steps)
        assert doc is not None
        assert (doc["step_status"], doc["percent"], doc["status"]) == (
            "completed",
            100.0,
            "completed",
        )


def test_private_fields_are_not_public() -> None:
    doc = run([started(), file("j1", "a")])
    assert doc is not None
    view = public_view(doc)
    assert "_seen" not in view and view["_id"] == "j1"


def test_the_end_waits_for_items_still_in_flight() -> None:
    import pytest

    from progress_svc.aggregate import ItemsStillInFlightError

    doc = run([started(total=2), file("j1", "a")])
    early = ImportFinished(
        producer="t",
        job_id="j1",
        status=ImportStatus.COMPLETED,
        processed=2,
        failed=0,
        occurred_at=T0 + timedelta(seconds=9),
    )
    with pytest.raises(ItemsStillInFlightError):
        apply_event(doc, early)
    doc = run([started(total=2), file("j1", "a"), file("j1", "b"), early])
    assert doc is not None and (doc["status"], doc["processed"]) == ("completed", 2)


def test_applying_an_event_leaves_the_previous_document_untouched() -> None:
    """The service may drop a computed document (a failed write), so the one it came
    from must still be exactly what the store holds."""

    events = [started(total=3), file("j1", "a"), file("j1", "b", ok=False), finished()]
    doc = None
    for event in events:
        before = copy.deepcopy(doc)
        new = apply_event(doc, event)
        assert doc == before
        doc = new if new is not None else doc


def test_a_batch_gives_the_same_document_as_its_events_one_by_one() -> None:
    events = [
        started(total=4),
        file("j1", "a"),
        file("j1", "b", ok=False),
        file("j1", "a"),  # a duplicate within the batch
        finished(),  # says 0 processed: ends the job, so the next file changes nothing
        file("j1", "c"),
    ]
    one_by_one = None
    expected = []
    for event in events:
        try:
            new = apply_event(one_by_one, event)
        except Exception as e:
            expected.append(type(e))
            continue
        expected.append(new is not None)
        one_by_one = new if new is not None else one_by_one
    stored = apply_event(None, started(total=4))
    before = copy.deepcopy(stored)
    batched, outcomes = apply_events(stored, events[1:])
    assert stored == before
    assert [type(o) if isinstance(o, Exception) else o for o in outcomes] == expected[1:]
    assert batched == one_by_one
    assert batched is not None and batched["status"] == "completed"
    assert (batched["processed"], len(batched["_seen"]) // 16) == (2, 2)  # 16 bytes an id


def test_an_event_that_fails_in_a_batch_leaves_no_trace_and_the_others_apply() -> None:
    early_end = ImportFinished(
        producer="t", job_id="j1", status=ImportStatus.COMPLETED, processed=3, occurred_at=T0
    )
    doc, outcomes = apply_events(None, [started(total=3), file("j1", "a"), early_end])
    assert outcomes[:2] == [True, True] and isinstance(outcomes[2], ItemsStillInFlightError)
    assert doc is not None and (doc["status"], doc["processed"], doc["seq"]) == ("running", 1, 2)


# a run that fails at the image, is retried and completes, as colis-svc emits it
RETRIED_RUN = [
    (TaskStatus.PENDING, 0, None, 0),
    (TaskStatus.PROCESSING, 10, None, 0),
    (TaskStatus.IMAGE_UPLOADING, 40, None, 0),
    (TaskStatus.FAILED_RETRY, 40, "Panne simulée", 0),
    (TaskStatus.PENDING, 0, None, 1),
    (TaskStatus.PROCESSING, 10, None, 1),
    (TaskStatus.CREATION, 60, "Stockage lent", 1),
    (TaskStatus.COMPLETED, 100, None, 1),
]


def retried_run() -> list[ColisStepChanged]:
    return [
        step(seq, status, percent).model_copy(update={"error": error, "retry_count": retries})
        for seq, (status, percent, error, retries) in enumerate(RETRIED_RUN)
    ]


@given(st.permutations(range(len(RETRIED_RUN))), st.lists(st.integers(0, 7), max_size=8))
def test_reordered_and_repeated_steps_end_as_the_steps_in_order(
    order: list[int], repeats: list[int]
) -> None:
    steps = retried_run()
    clean = run(steps)
    messy = run([steps[i] for i in order] + [steps[i] for i in repeats])
    assert clean is not None and messy is not None
    # `seq` counts the changes applied, which differ; everything else is the same
    assert {**messy, "seq": 0} == {**clean, "seq": 0}
    assert [e["error"] for e in clean["errors"]] == ["Panne simulée", "Stockage lent"]


def test_a_late_failed_step_redelivered_after_a_write_is_not_added_twice() -> None:
    """The stored document has millisecond dates: the redelivered step's own date has
    microseconds, and must still be recognised."""
    failed = ColisStepChanged(
        producer="t",
        job_id="t1",
        task_id="t1",
        user_id="alice",
        lot_id="L1",
        operation=ColisOperation.CREATE,
        status=TaskStatus.FAILED_RETRY,
        step="Calcul du prix",
        percent=80,
        seq=3,
        error="Base indisponible",
        occurred_at=T0 + timedelta(seconds=3, microseconds=123456),
    )
    done = failed.model_copy(
        update={
            "status": TaskStatus.COMPLETED,
            "step": "Colis finalisé",
            "percent": 100,
            "seq": 7,
            "error": None,
            "occurred_at": T0 + timedelta(seconds=7),
        }
    )
    doc = apply_event(apply_event(None, done), failed)
    assert doc is not None and len(doc["errors"]) == 1
    stored = copy.deepcopy(doc)
    stored["errors"][0]["at"] = stored["errors"][0]["at"].replace(microsecond=123000)
    assert apply_event(stored, failed) is None


def test_ids_seen_stored_as_a_list_by_an_earlier_version_are_still_recognised() -> None:
    doc = apply_event(None, started(total=3))
    doc = apply_event(doc, file("j1", "a"))
    assert doc is not None and isinstance(doc["_seen"], bytes)
    legacy = {**doc, "_seen": [str(UUID(bytes=doc["_seen"]))]}
    assert apply_event(legacy, file("j1", "a")) is None  # the same file again: a duplicate
    after = apply_event(legacy, file("j1", "b"))
    assert after is not None and after["processed"] == 2
    assert isinstance(after["_seen"], bytes) and len(after["_seen"]) == 32


def test_ids_seen_are_recognised_in_a_document_read_back_from_the_store() -> None:
    doc = apply_event(None, started(total=3))
    doc = apply_event(doc, file("j1", "a"))
    assert doc is not None
    # the store returns equal bytes in another object: the set is rebuilt from them
    read_back = {**doc, "_seen": bytes(bytearray(doc["_seen"]))}
    assert read_back["_seen"] is not doc["_seen"]
    assert apply_event(read_back, file("j1", "a")) is None
    # and a write that failed leaves nothing behind: the same document, the same file
    assert apply_event(read_back, file("j1", "b")) is not None
    again = apply_event(read_back, file("j1", "b"))
    assert again is not None and again["processed"] == 2
