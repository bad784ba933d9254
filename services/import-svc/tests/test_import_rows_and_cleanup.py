"""BBGR gauge by rows, a job's files read by `_id`, and the clean-up's orphans and supplier
totals (on the real store)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from import_svc import invoice_store
from import_svc.events import failed_units, file_result, item_events
from import_svc.processing import gauge_units, process_file, row_key
from import_svc.repository import FileState, ImportRepository, JobState
from jauge_shared.contracts import ImportKind
from jauge_shared.contracts.imports import final_import_message
from jauge_shared.mongo import RANGE_READ_FROM
from jauge_testkit.import_files import make_bbgr_csv, make_interchange, sample_invoice

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
LIMIT = 1024 * 1024


def test_a_bbgr_file_counts_its_rows_and_an_unreadable_one_counts_once(tmp_path: Path) -> None:
    csv = tmp_path / "mensuel.csv"
    csv.write_bytes(make_bbgr_csv("bbgr_monthly", 12, bad_rows=(2,)))
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"\x00\x01\x02")
    edi = tmp_path / "f.edi"
    edi.write_bytes(b"")
    assert gauge_units(ImportKind.BBGR_MONTHLY, csv, LIMIT) == 12
    assert gauge_units(ImportKind.BBGR_MONTHLY, junk, LIMIT) == 1
    assert gauge_units(ImportKind.EDI, edi, LIMIT) == 1


def test_each_bbgr_row_is_one_gauge_item_with_a_stable_id(tmp_path: Path) -> None:
    path = tmp_path / "retours.csv"
    path.write_bytes(make_bbgr_csv("bbgr_retours", 5, bad_rows=(3,)))
    outcome = process_file(ImportKind.BBGR_RETOURS, path, LIMIT)
    assert not outcome.ok and outcome.failed_rows == 1
    assert "ligne 4" in (outcome.error or "")
    file = {"name": "retours.csv", **file_result(outcome)}
    events = item_events("job-1", file)
    assert [e.item for e in events] == [f"retours.csv ligne {n}" for n in range(2, 7)]
    assert [e.ok for e in events] == [True, True, False, True, True]
    assert events[2].error
    assert [e.event_id for e in item_events("job-1", file)] == [e.event_id for e in events]
    assert failed_units(file) == 1
    good = outcome.rows[0]
    assert row_key(ImportKind.BBGR_RETOURS, good.values).count("|") == 1


def test_an_edi_file_is_one_item() -> None:
    file = {"name": "a.edi", "ok": False, "error": "Fichier vide"}
    [event] = item_events("job-1", file)
    assert (event.item, event.ok, event.error) == ("a.edi", False, "Fichier vide")
    assert failed_units(file) == 1


def test_final_messages() -> None:
    assert final_import_message(12, 1) == "Import terminé : 12 fichiers traités, 1 en erreur"
    assert (
        final_import_message(25, 2, rows=True) == "Import terminé : 25 lignes traitées, 2 en erreur"
    )
    assert final_import_message(1, 0) == "Import terminé : 1 fichier traité"
    assert final_import_message(0, 0) == "Import terminé : aucun fichier à importer"


@pytest.fixture
async def repo(test_env):
    client = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    yield ImportRepository(client, f"{test_env.db_prefix}_import")
    await client.close()


async def _import(repo: ImportRepository, job: str, name: str, specs) -> dict:
    keys = []
    for spec in specs:
        document = spec.expected().to_document()
        keys.append(await repo.save_invoice({**document, "job_id": job, "source_file": name}))
    supplier = specs[0].supplier_id
    return {
        "supplier": supplier,
        "keys": keys,
        **await repo.previous_keys(job, name, supplier, keys),
    }


async def test_a_jobs_files_are_read_by_id_in_index_order_from_its_names(
    repo: ImportRepository,
) -> None:
    names = [f"f{i:03d}.edi" for i in range(70)]  # more than one chunk of reads
    await repo.add_files("job-r", names, NOW)
    await repo.finish_file("job-r", names[3], {"ok": True})
    await repo.add_files("job-other", ["f000.edi"], NOW)
    job = {"_id": "job-r", "names": [*names, "gone.edi"]}  # a name without its file

    files = await repo.file_results(job)

    assert [f["name"] for f in files] == names
    assert [f["index"] for f in files] == list(range(len(names)))
    assert await repo.count_files(job, FileState.DONE) == 1
    assert await repo.count_files(job, FileState.PENDING, FileState.DONE) == len(names)
    assert await repo.count_files(job) == len(names)
    # a start that failed before recording `names`: the job's files are queried
    unprepared = await repo.file_results({"_id": "job-r"})
    assert [f["_id"] for f in unprepared] == [f["_id"] for f in files]


async def test_a_big_jobs_files_are_read_as_one_range_and_odd_names_are_not_lost(
    repo: ImportRepository,
) -> None:
    # names the store's JSON text orders apart from MongoDB's order (escaped characters)
    odd = ['quote"d.edi', "back\\slash.edi", "tab\t.edi", "é.edi"]
    names = [f"f{i:03d}.edi" for i in range(RANGE_READ_FROM)] + odd
    await repo.add_files("j1", names, NOW)
    for name in names[::2]:
        await repo.finish_file("j1", name, {"ok": True, "name": name})
    for neighbour in ("j10", "j1.x", "j"):  # ids just beside the range: never in it
        await repo.add_files(neighbour, names[:3], NOW)
        await repo.finish_file(neighbour, names[0], {"ok": False})
    job = {"_id": "j1", "names": names}

    files = await repo.file_results(job)
    results = await repo.recorded_results(job)

    assert [f["_id"] for f in files] == [f"j1/{name}" for name in names]
    assert [r["_id"] for r in results] == [f"j1/{name}" for name in names[::2]]
    assert all(r["ok"] is True for r in results)


async def test_a_reimported_file_orphans_what_it_no_longer_holds(repo: ImportRepository) -> None:
    invoices = [sample_invoice(1, f"F{n}", n_lines=2) for n in range(3)]
    credit = sample_invoice(1, "AV1", n_lines=1, credit_note=True)
    first = await _import(repo, "job-1", "a.edi", [*invoices, credit])
    assert (first["orphans"], first["update"]) == ([], False)
    other = await _import(repo, "job-1", "b.edi", [sample_invoice(2, "X1", n_lines=1)])
    assert other["orphans"] == []

    # job 2: a.edi again, without F2; F1 moved to another file of the same job
    again = await _import(repo, "job-2", "a.edi", [invoices[0], credit])
    moved = await _import(repo, "job-2", "c.edi", [invoices[1]])
    assert again["update"] and sorted(again["orphans"]) == sorted(
        [f"{invoices[1].supplier_id}:F1", f"{invoices[2].supplier_id}:F2"]
    )
    runs = []
    for _ in range(2):  # the clean-up may run twice
        runs.append(await repo.drop_orphans("job-2", "a.edi", again["orphans"]))
        await repo.record_source("job-2", "a.edi", again["supplier"], again["keys"])
    # F2 only (F1 was stored again by c.edi); a second run still knows what went, for
    # the totals, and deletes nothing more
    assert runs[0] == runs[1]
    assert [(d["supplier_id"], d["net"]) for d in runs[0]] == [
        (invoices[2].supplier_id, str(invoices[2].net))
    ]
    assert moved["orphans"] == []
    numbers = sorted([d["number"] async for d in repo.invoices.find({})])
    assert numbers == ["AV1", "F0", "F1", "X1"]
    assert await repo.invoices.find_one({"number": "F1"}) is not None

    totals = await repo.recompute_supplier_totals({invoices[0].supplier_id}, NOW)
    assert await repo.recompute_supplier_totals({invoices[0].supplier_id}, NOW) == totals
    [t] = totals
    net = invoices[0].net + invoices[1].net - credit.net
    assert (t["invoices"], t["credit_notes"], t["net"]) == (2, 1, str(net))
    assert Decimal(t["gross"]) == invoices[0].gross + invoices[1].gross - credit.gross
    stored = await repo.supplier_totals.find_one({"_id": invoices[0].supplier_id})
    assert stored is not None and stored["tax"] == t["tax"]


async def test_invoices_are_searched_by_supplier_number_and_visible_jobs(repo) -> None:
    await _import(repo, "job-a", "a.edi", [sample_invoice(1, "F1", n_lines=1)])
    await _import(repo, "job-b", "b.edi", [sample_invoice(2, "F2", n_lines=1)])
    search = repo.search_invoices
    base = {"supplier": None, "number": None, "job_id": None, "limit": 10, "after": None}
    assert len((await search(**{**base, "job_ids": None}))[0]) == 2
    assert (await search(**{**base, "job_ids": ["job-a"]}))[0][0]["number"] == "F1"
    assert (await search(**{**base, "job_ids": []}))[0] == []
    assert (await search(**{**base, "job_ids": ["job-a"], "job_id": "job-b"}))[0] == []
    assert len((await search(**{**base, "job_ids": None, "number": "F2"}))[0]) == 1
    name_part = sample_invoice(2, "F2", n_lines=1).supplier_name.split()[0]
    assert len((await search(**{**base, "job_ids": None, "supplier": name_part}))[0]) >= 1


async def test_invoices_come_a_page_at_a_time_after_the_last_key(repo) -> None:
    await _import(repo, "job-a", "a.edi", [sample_invoice(n, f"F{n}", n_lines=1) for n in range(5)])
    base = {"supplier": None, "number": None, "job_id": None, "job_ids": None, "limit": 2}
    numbers: list[str] = []
    after = None
    for _ in range(5):
        page, after = await repo.search_invoices(**base, after=after)
        assert len(page) <= 2 and all("_id" not in doc for doc in page)
        numbers += [doc["number"] for doc in page]
        if after is None:
            break
    assert sorted(numbers) == [f"F{n}" for n in range(5)] and len(set(numbers)) == 5


def test_interchange_fixture_sanity() -> None:
    assert make_interchange([sample_invoice(1, "F", n_lines=1)]).startswith(b"UNA")


async def test_a_page_that_finds_few_ends_early_with_its_cursor(repo, monkeypatch) -> None:
    """An agent's one invoice behind many of others: bounded reads, never the rest of
    the history at once, and still found by following the cursors."""
    monkeypatch.setattr(invoice_store, "INVOICES_EXAMINED", 3)
    monkeypatch.setattr(invoice_store, "INVOICE_BATCH", 2)
    await _import(repo, "job-a", "a.edi", [sample_invoice(1, f"F{n}", n_lines=1) for n in range(7)])
    await _import(repo, "job-b", "b.edi", [sample_invoice(1, "F9", n_lines=1)])
    base = {"supplier": None, "number": None, "job_id": None, "job_ids": ["job-b"], "limit": 5}
    pages: list[list[str]] = []
    after = None
    while True:
        page, after = await repo.search_invoices(**base, after=after)
        pages.append([doc["number"] for doc in page])
        if after is None:
            break
    assert pages[0] == [] and [n for page in pages for n in page] == ["F9"]
    assert len(pages) == 3  # 3 + 3 examined, then the last two and the end


async def test_a_jobs_names_are_kept_beside_it_and_read_only_when_asked(
    repo: ImportRepository,
) -> None:
    names = [f"f{i:04d}.edi" for i in range(2000)]
    await repo.add_job({"_id": "job-n", "state": "running"})
    await repo.set_job_fields("job-n", total=len(names), names=names)

    stored = await repo.jobs.find_one({"_id": "job-n"})
    assert stored is not None and "names" not in stored  # each read of it stays small
    assert stored["total"] == len(names)
    job = await repo.get_job("job-n")
    assert job is not None and job["names"] == names
    state_only = await repo.get_job("job-n", names=False)
    assert state_only is not None and "names" not in state_only
    assert [j["names"] for j in await repo.jobs_in(JobState.RUNNING)] == [names]
    # the clean-up of a cancel whose start died: no names, then an empty list
    await repo.add_job({"_id": "job-e", "state": "cancelling"})
    assert "names" not in (await repo.get_job("job-e") or {})
    await repo.set_job_fields("job-e", names=[], total=0)
    assert (await repo.get_job("job-e") or {})["names"] == []
    # a job stored with its names inside, as they were before
    await repo.add_job({"_id": "job-old", "state": "queued", "names": ["a.edi"]})
    assert (await repo.get_job("job-old") or {})["names"] == ["a.edi"]
    assert "names" not in (await repo.get_job("job-old", names=False) or {})
    assert [j["names"] for j in await repo.queued_jobs()] == [["a.edi"]]
