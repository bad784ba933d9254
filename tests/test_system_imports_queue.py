"""One import at a time: a second request waits, shown as queued, and starts by itself;
an import past its deadline fails with a clear message and loses no file."""

from __future__ import annotations

import pytest
from system_imports_support import Api, edi_batch, start_import_stack, write_inbox

from jauge_testkit.import_files import make_interchange, sample_invoice

pytestmark = pytest.mark.system

# taken one at a time, these last well past the 2 s deadline below (about 6 s on the CI
# machine); the margin matters, since the store got faster and the job with it
SLOW_FILES = 40


def slow_files(tag: str) -> dict[str, bytes]:
    """~12,000 segments each: about 0.15 s of parsing per file."""
    return {
        f"gros-{tag}{i}.edi": make_interchange(
            [sample_invoice(1, f"G{tag}{i}", n_lines=2000)], ref=f"G{tag}{i}"
        )
        for i in range(SLOW_FILES)
    }


async def test_deadline_then_a_second_import_queued_behind_a_running_one(
    make_stack, test_env
) -> None:
    # prefetch 1: files are taken one at a time, so the job lasts while the test looks
    stack = start_import_stack(
        make_stack, test_env.env(), JAUGE_JOB_DEADLINE_S="2", JAUGE_PREFETCH="1"
    )
    gateway = stack.service("gateway").url
    data = test_env.data_dir
    late = slow_files("a")
    write_inbox(data, "edi", late)
    alice, bob = [await Api.login(gateway, u) for u in ("alice", "bob")]
    try:
        # 1. past its deadline, the job fails, saying how many files were not processed
        expired = await alice.finished(await alice.start("edi"), timeout_s=60)
        assert expired["status"] == "failed", expired
        assert expired["processed"] < SLOW_FILES
        assert "Délai dépassé (2 s)" in expired["message"]
        assert (
            f"{SLOW_FILES - expired['processed']} fichier(s) non traité(s)" in (expired["message"])
        )
        # no file lost: each is archived, or back in the inbox for the next import
        stack.stop(stack.service("import-svc"))
        inbox = sorted(p.name for p in (data / "inbox" / "edi").iterdir())
        archived = sorted(p.name for p in (data / "archive" / "edi").rglob("*.edi"))
        assert sorted(inbox + archived) == sorted(late)
        assert len(inbox) >= SLOW_FILES - expired["processed"]

        # 2. with the default deadline: two imports asked at once, the second waits
        service = stack.start("import-svc", extra_env={"JAUGE_JOB_DEADLINE_S": "3600"})
        stack.wait_ready([service])
        first = await alice.start("edi")
        response = await bob.upload("edi", {n: d for n, (d, _) in edi_batch(3, seed=9).items()})
        assert response.status_code == 202, response.text
        second = response.json()["job_id"]
        queued = await bob.until(second, lambda j: j["status"] == "queued")
        assert queued["queue_position"] == 1
        assert (await alice.job(first))["status"] in {"queued", "running"}

        done_first = await alice.finished(first, timeout_s=120)
        assert (done_first["status"], done_first["processed"]) == ("completed", len(inbox))
        done = await bob.finished(second, timeout_s=60)
        assert (done["status"], done["total"], done["processed"], done["failed"]) == (
            "completed",
            3,
            3,
            0,
        )
        assert done["message"] == "Import terminé : 3 fichiers traités"
        assert done["started_at"] >= done_first["finished_at"]
        assert not any((data / "inbox" / "edi").iterdir())
        assert len(list((data / "archive" / "edi").rglob("*.edi"))) == SLOW_FILES + 3
    finally:
        await alice.close()
        await bob.close()
