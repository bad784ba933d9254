"""The task's first frame, published by the gateway when it queues the command, reads
as colis-svc's later ones: the same summary ("7,5 kg", not "7.5 kg") and the same rules
for what may be done."""

from __future__ import annotations

from gateway.routers.colis import pending_event
from jauge_shared.contracts import ColisData, ColisOperation, TaskStatus
from jauge_shared.contracts.colis import allowed_actions, summarize

DATA = ColisData.model_validate(
    {
        "client_id": "cli-1",
        "type_transport": "express",
        "longueur": "50",
        "largeur": "40",
        "hauteur": "30",
        "poids": "7.5",
    }
)


def test_the_first_frame_has_colis_svcs_summary_and_actions() -> None:
    event = pending_event("t1", "alice", "lot-1", ColisOperation.CREATE, DATA, "Awa Diallo")
    assert event.summary == summarize(DATA, "Awa Diallo")
    assert event.summary["poids"] == "7,5 kg"
    expected = allowed_actions(TaskStatus.PENDING, 0, 0)
    assert (event.can_retry, event.can_force_retry, event.can_cancel) == (
        expected["can_retry"],
        expected["can_force_retry"],
        expected["can_cancel"],
    )
