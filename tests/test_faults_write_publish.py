"""A crash between a state stored and its announcement, at each place a worker writes
then publishes (issue 14, points 1 and 5).

Fault points (jauge_shared.faults) make each process SIGKILL itself once, right after
the write and before the publish:
- colis-svc after storing a task's `creation` step and after storing `completed`;
- import-svc after storing an import's files and total (before import.started), after
  storing a file's result and after storing the import `completed`;
- progress-svc after computing a document and before writing it.
A supervisor starts each killed service again. The load is an EDI import of 30 files
(2 bad) and 6 parcels. Afterwards: every gauge says what its owner stored, counts are
exact, one parcel per task with unique tracking numbers, and every `.dlq` is empty.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from faults_support import USERS, WORKER_ENV, dead_letter_counts
from stack import add_user
from system_colis_support import FAST, FORM
from system_colis_support import Api as ColisApi
from system_imports_support import Api as ImportApi
from system_imports_support import (
    assert_each_file_imported_once,
    bad_edi_files,
    edi_batch,
    write_inbox,
)
from truth_support import Supervisor, gauge_disagreements, until_gauges_agree

pytestmark = pytest.mark.system

BAD = ("vide.edi", "tronque.edi")
FAULTS = {
    "colis-svc": "colis.stored:creation=kill,colis.stored:completed=kill",
    "import-svc": (
        "import.started_stored=kill,import.file_stored=kill,import.completed_stored=kill"
    ),
    "progress-svc": "progress.before_write=kill",
}
RECONCILE = {"JAUGE_RECONCILE_INTERVAL_S": "1", "JAUGE_RECONCILE_AFTER_S": "5"}


@pytest.mark.timeout(600)
async def test_a_crash_between_each_write_and_its_publish_leaves_every_gauge_true(
    make_stack, test_env
) -> None:
    env = test_env.env()
    stack = make_stack(**FAST, **RECONCILE)
    extra = {
        "progress-svc": {"JAUGE_FAULT_POINTS": FAULTS["progress-svc"]},
        "import-svc": {**WORKER_ENV, "JAUGE_FAULT_POINTS": FAULTS["import-svc"]},
        "colis-svc": {
            **WORKER_ENV,
            "JAUGE_TEST_HOOKS": "true",
            "JAUGE_FAULT_POINTS": FAULTS["colis-svc"],
        },
    }
    for name in ("progress-svc", "import-svc", "colis-svc", "gateway"):
        stack.start(name, extra_env=extra.get(name))
    for name, role in USERS.items():
        add_user(env, name, role, f"{name}-password")
    stack.wait_ready(timeout_s=180)
    gateway = stack.service("gateway").url

    good = edi_batch(30 - len(BAD), seed=3)
    bad = {name: data for name, data in bad_edi_files().items() if name in BAD}
    write_inbox(test_env.data_dir, "edi", {**{n: d for n, (d, _) in good.items()}, **bad})
    store = test_env.mongo()
    importer = await ImportApi.login(gateway, "alice")
    poster = await ColisApi.as_user(gateway, "bob")
    started = time.monotonic()
    try:
        with Supervisor(stack, extra) as supervisor:
            job_id = await importer.start("edi")
            lot = await poster.lot("cargo")
            responses = [
                await poster.create_colis(
                    lot["id"], {**FORM, "description": f"Colis {i} [test:delay=0.1]"}
                )
                for i in range(6)
            ]
            assert [r.status_code for r in responses] == [202] * 6, responses[0].text
            tasks = [r.json()["task_id"] for r in responses]

            job = await importer.finished(job_id, timeout_s=240)
            finals = [await poster.wait(t, timeout_s=240) for t in tasks]
            took, wrong = await until_gauges_agree(store, test_env.db_prefix, timeout_s=60)
            killed = sorted(supervisor.restarts)

        # every fault point fired, once each
        marks = sorted(p.name for p in (test_env.data_dir / "faults").iterdir())
        assert len(marks) == 6, marks
        assert killed == sorted(["colis-svc"] * 2 + ["import-svc"] * 3 + ["progress-svc"]), killed

        assert not wrong, wrong
        assert job["status"] == "completed", job
        assert (job["total"], job["processed"], job["failed"]) == (30, 30, len(BAD)), job
        assert [t["step_status"] for t in finals] == ["completed"] * 6, finals
        import_db = store[f"{test_env.db_prefix}_import"]
        assert_each_file_imported_once(import_db, test_env.data_dir, job_id, good, rejected=BAD)
        colis_db = store[f"{test_env.db_prefix}_colis"]
        assert Counter(d["task_id"] for d in colis_db["colis"].find()) == Counter(tasks)
        numbers = [d["numero_suivi"] for d in colis_db["colis"].find()]
        assert len(set(numbers)) == 6, numbers
        counts = await dead_letter_counts(test_env)
        assert counts and set(counts.values()) == {0}, counts
        assert gauge_disagreements(store, test_env.db_prefix) == {}
        print(
            f"\nwrite→publish crashes: {len(killed)} kills ({', '.join(marks)}),"
            f" all done in {time.monotonic() - started:.1f} s,"
            f" gauges agreed {took:.1f} s after the work ended"
        )
    finally:
        await importer.close()
        await poster.close()
        store.close()
