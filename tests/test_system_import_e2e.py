"""The thinnest real path, end to end: POST an import, watch it on a WebSocket.

Real processes, real RabbitMQ, real FerretDB (or MongoDB), real sockets.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from stack import add_user
from system_client import Socket, login

from jauge_testkit.import_files import make_interchange, sample_invoice

pytestmark = pytest.mark.system

TERMINAL = {"completed", "failed", "cancelled"}


def write_inbox(data_dir: Path, good: int, bad: int) -> None:
    inbox = data_dir / "inbox" / "edi"
    inbox.mkdir(parents=True, exist_ok=True)
    for i in range(good):
        invoices = [sample_invoice(i % 3 + 1, f"F{i:03d}-{n}", n_lines=3) for n in range(2)]
        (inbox / f"fournisseur-{i:03d}.edi").write_bytes(
            make_interchange(invoices, sender="SUP", receiver="JAUGE", ref=f"R{i}")
        )
    for i in range(bad):
        (inbox / f"vide-{i}.edi").write_bytes(b"")


async def test_an_import_is_pushed_live_to_its_owner_and_to_nobody_else(
    make_stack, test_env
) -> None:
    stack = make_stack()
    stack.start_all()
    stack.wait_ready()
    add_user(test_env.env(), "alice", "agent", "alice-password")
    add_user(test_env.env(), "bob", "agent", "bob-password")
    write_inbox(test_env.data_dir, good=4, bad=1)
    gateway = stack.service("gateway").url

    alice = await Socket.open(gateway, await login(gateway, "alice", "alice-password"))
    bob = await Socket.open(gateway, await login(gateway, "bob", "bob-password"))
    await alice.subscribe("jobs")
    await bob.subscribe("jobs")
    token = await login(gateway, "alice", "alice-password")
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        response = await client.post(
            "/api/imports", json={"kind": "edi"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]

        await alice.subscribe(f"job:{job_id}")
        final = await alice.until(
            lambda f: (
                f.get("topic") == f"job:{job_id}" and (f.get("job") or {}).get("status") in TERMINAL
            )
        )
        job = final["job"]
        assert job["status"] == "completed"
        assert (job["processed"], job["total"], job["failed"]) == (5, 5, 1)
        assert job["message"] == "Import terminé : 5 fichiers traités, 1 en erreur"
        assert job["errors"][0]["item"] == "vide-0.edi"

        # the `jobs` topic saw the whole life of the job, in seq order
        on_jobs = [f for f in alice.frames if f.get("topic") == "jobs" and f["job"]["id"] == job_id]
        seqs = [f["job"]["seq"] for f in on_jobs]
        assert seqs == sorted(set(seqs)) and seqs, seqs
        # the job topic starts with a snapshot
        on_job = [f for f in alice.frames if f.get("topic") == f"job:{job_id}"]
        assert on_job[0]["type"] == "snapshot"

        rest = await client.get(f"/api/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
        assert rest.status_code == 200 and rest.json()["seq"] == job["seq"]

        bob_token = await login(gateway, "bob", "bob-password")
        other = await client.get(
            f"/api/jobs/{job_id}", headers={"Authorization": f"Bearer {bob_token}"}
        )
        assert other.status_code == 404
        await bob.subscribe(f"job:{job_id}")
        snapshot = await bob.until(lambda f: f.get("topic") == f"job:{job_id}")
        assert snapshot["job"] is None
        assert not any((f.get("job") or {}).get("id") == job_id for f in bob.frames)

    data = test_env.data_dir
    assert not any((data / "inbox" / "edi").iterdir())
    archived = list((data / "archive" / "edi").rglob("*.edi"))
    assert len(archived) == 4
    assert (data / "errors" / "edi" / "vide-0.edi.error.txt").read_text().strip()
    with test_env.mongo() as client:
        assert client[f"{test_env.db_prefix}_import"]["invoices"].count_documents({}) == 8
    await alice.close()
    await bob.close()
