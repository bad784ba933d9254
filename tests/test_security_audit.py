"""Who changed which lot or parcel, and when (issue 15, the audit trail), end to end on
the real broker and store: the changes made through the API are read back from
`/api/colis/{id}/history`, `/api/lots/{id}/history` and, for admins, `/api/audit`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from stack import Stack, add_user
from system_colis_support import FAST, FORM, TERMINAL, Api

pytestmark = pytest.mark.system


def summary(page: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["what"], e["who"]) for e in page["entries"]]


async def test_every_change_to_lots_and_parcels_is_in_the_history_with_who_and_when(
    make_stack: Callable[..., Stack], test_env: Any
) -> None:
    stack = make_stack(**FAST, JAUGE_TEST_HOOKS="true")
    for name in ("progress-svc", "colis-svc", "gateway"):
        stack.start(name)
    stack.wait_ready(timeout_s=120)
    env = test_env.env()
    for user, role in (("alice", "agent"), ("bob", "agent"), ("root", "admin")):
        add_user(env, user, role, f"{user}-password")
    base = stack.service("gateway").url
    alice, bob, root = [await Api.as_user(base, u) for u in ("alice", "bob", "root")]
    started = datetime.now(UTC)
    try:
        lot = await alice.lot("cargo")
        # a parcel created by alice, then edited by bob
        parcel_id = (await alice.create_colis(lot["id"])).json()["task_id"]
        assert (await alice.wait(parcel_id))["step_status"] == "completed"
        edit = await bob.http.patch(f"/api/colis/{parcel_id}", data={"poids": "9"})
        assert edit.status_code == 202, edit.text
        assert (await bob.wait(edit.json()["task_id"]))["step_status"] == "completed"
        # a creation held at each step, cancelled by alice
        held = {**FORM, "description": "[test:delay=1.5]"}
        cancelled_id = (await alice.create_colis(lot["id"], held)).json()["task_id"]
        await alice.wait(cancelled_id, lambda t: t["step_status"] == "validation")
        assert (await alice.http.post(f"/api/tasks/{cancelled_id}/cancel")).status_code == 202
        assert (await alice.wait(cancelled_id))["step_status"] == "cancelled"
        # a creation that failed for good, retried by alice with the client corrected
        failed_id = (
            await alice.create_colis(lot["id"], {**FORM, "client_id": "cli-inconnu"})
        ).json()["task_id"]
        assert (await alice.wait(failed_id))["step_status"] == "failed_final"
        retry = await alice.http.post(
            f"/api/tasks/{failed_id}/retry", json={"colis_data": {"client_id": "cli-demo-2"}}
        )
        assert retry.status_code == 202, retry.text
        done = await alice.wait(
            failed_id, lambda t: t["retry_count"] == 1 and t["step_status"] in TERMINAL
        )
        assert done["step_status"] == "completed", done
        closed = await root.http.post(f"/api/lots/{lot['id']}/close")
        assert closed.status_code == 200

        # the parcel's history, read by both agents (the agency's shared data)
        for reader in (alice, bob):
            response = await reader.http.get(f"/api/colis/{parcel_id}/history")
            assert response.status_code == 200, response.text
            page = response.json()
            assert summary(page) == [("colis.updated", "bob"), ("colis.created", "alice")]
        updated, created = page["entries"]
        assert updated["changes"] == {"poids": ["7.5", "9"]}
        assert created["changes"]["client_id"] == [None, "cli-demo-1"]
        stored = (await alice.http.get(f"/api/colis/{parcel_id}")).json()
        assert created["changes"]["numero_suivi"] == [None, stored["numero_suivi"]]
        assert created["task_id"] == parcel_id and created["lot_id"] == lot["id"]
        now = datetime.now(UTC)
        for entry in page["entries"]:
            assert started <= datetime.fromisoformat(entry["at"]) <= now
        assert datetime.fromisoformat(updated["at"]) >= datetime.fromisoformat(created["at"])

        # the cancelled creation's parcel is gone, its history stays
        assert (await alice.http.get(f"/api/colis/{cancelled_id}")).status_code == 404
        gone = (await bob.http.get(f"/api/colis/{cancelled_id}/history")).json()
        assert summary(gone)[0] == ("task.cancelled", "alice")
        assert gone["entries"][0]["changes"]["status"][1] == "cancelled"
        retried = (await bob.http.get(f"/api/colis/{failed_id}/history")).json()
        assert summary(retried) == [("colis.created", "alice"), ("task.retried", "alice")]
        assert retried["entries"][1]["changes"] == {
            "client_id": ["cli-inconnu", "cli-demo-2"],
            "retry_count": [0, 1],
        }
        missing = await alice.http.get("/api/colis/nope/history")
        assert missing.status_code == 404 and missing.json()["detail"] == "Colis introuvable."

        # the lot's history: its own changes and its parcels', newest first
        lot_page = (await bob.http.get(f"/api/lots/{lot['id']}/history")).json()
        whats = summary(lot_page)
        assert whats[0] == ("lot.closed", "root") and whats[-1] == ("lot.created", "alice")
        assert lot_page["entries"][0]["changes"] == {"statut": ["ouvert", "ferme"]}
        assert ("colis.updated", "bob") in whats and ("task.cancelled", "alice") in whats
        first = (await bob.http.get(f"/api/lots/{lot['id']}/history", params={"limit": 2})).json()
        older = await bob.http.get(
            f"/api/lots/{lot['id']}/history", params={"limit": 100, "before": first["next"]}
        )
        assert summary(first) + summary(older.json()) == whats

        # everything at once: admins only
        assert (await alice.http.get("/api/audit")).status_code == 403
        everything = await root.http.get("/api/audit")
        assert everything.status_code == 200
        assert summary(everything.json()) == whats
    finally:
        for api in (alice, bob, root):
            await api.close()
