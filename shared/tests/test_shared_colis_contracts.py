"""colis-svc's contracts: typed request/reply, the rules and the summary others show."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from jauge_shared.contracts import COLIS_RPC_CHANGES, ColisData, ColisRpcRequest, TaskStatus
from jauge_shared.contracts.colis import (
    ACTIVE_STATUSES,
    CLOSED_STATUSES,
    FAILED_STATUSES,
    ColisEdits,
    allowed_actions,
    can_cancel,
    can_retry,
    summarize,
)
from jauge_shared.contracts.colis_rpc import QUERY_MODELS, CloseLot, GetLot

DATA = ColisData.model_validate(
    {
        "client_id": "cli-1",
        "type_transport": "cargo",
        "longueur": "50",
        "largeur": "40.5",
        "hauteur": "1250",
        "poids": "7.5",
    }
)


def test_the_wire_stays_method_and_params_and_reads_back_as_its_model() -> None:
    request = CloseLot(lot_id="l1", user_id="alice").to_request()
    assert request.model_dump() == {
        "method": "close_lot",
        "params": {"lot_id": "l1", "user_id": "alice"},
    }
    assert request.query() == CloseLot(lot_id="l1", user_id="alice")
    assert not request.is_read
    assert ColisRpcRequest(method="get_lot", params={"lot_id": "l1"}).query() == GetLot(lot_id="l1")
    with pytest.raises(ValidationError):
        ColisRpcRequest(method="get_lot", params={"lot": "l1"}).query()


def test_only_the_five_changes_are_never_asked_twice() -> None:
    changes = {"create_client", "update_client", "create_lot", "close_lot", "ship_lot"}
    assert changes == COLIS_RPC_CHANGES
    methods = [model.model_fields["method"].default for model in QUERY_MODELS]
    assert len(methods) == len(set(methods)) == 18


def test_the_summary_is_french_for_every_frame() -> None:
    summary = summarize(DATA, "Awa Diallo")
    assert summary["poids"] == "7,5 kg"
    assert summary["dimensions"] == "50×40,5×1\u202f250 cm"
    assert summary["client"] == "Awa Diallo"
    assert summarize(DATA, None)["client"] == "cli-1"


def test_status_sets_and_rules_agree() -> None:
    assert ACTIVE_STATUSES.isdisjoint(FAILED_STATUSES | CLOSED_STATUSES)
    assert set(TaskStatus) == ACTIVE_STATUSES | FAILED_STATUSES | CLOSED_STATUSES
    for status in TaskStatus:
        actions = allowed_actions(status, 1, 3)
        assert actions["can_cancel"] == can_cancel(status) == (status not in CLOSED_STATUSES)
        assert actions["can_retry"] == can_retry(status, 1, 3) == (status in FAILED_STATUSES)
    assert not can_retry(TaskStatus.FAILED_FINAL, 3, 3)
    assert can_retry(TaskStatus.FAILED_FINAL, 3, 3, force=True)


def test_edits_are_the_form_with_every_field_optional() -> None:
    assert set(ColisEdits.model_fields) == set(ColisData.model_fields)
    assert ColisEdits(poids=Decimal("2.5")).changes() == {"poids": "2.5"}
    with pytest.raises(ValidationError):
        ColisEdits(poids=Decimal(0))
