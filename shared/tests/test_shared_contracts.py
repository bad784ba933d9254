from __future__ import annotations

import pytest
from pydantic import ValidationError

from jauge_shared.contracts import (
    ALL_MESSAGES,
    MESSAGES_BY_TYPE,
    Command,
    CreateColis,
    RequestImport,
    message_type,
    stable_event_id,
)
from jauge_shared.settings import ServiceSettings
from jauge_shared.topology import ALL_QUEUES, COMMANDS_EXCHANGE, EVENTS_EXCHANGE


def test_every_message_has_a_unique_routing_key() -> None:
    assert len(MESSAGES_BY_TYPE) == len(ALL_MESSAGES)


def test_commands_are_imperative_and_go_to_the_commands_exchange() -> None:
    for model in ALL_MESSAGES:
        bound = [q for q in ALL_QUEUES if message_type(model) in q.routing_keys]
        for queue in bound:
            expected = COMMANDS_EXCHANGE if issubclass(model, Command) else EVENTS_EXCHANGE
            assert queue.routed_from is expected, model


def test_a_message_round_trips_through_json() -> None:
    command = RequestImport(producer="gateway", job_id="j1", kind="edi", user_id="alice")
    again = RequestImport.model_validate_json(command.model_dump_json())
    assert again == command
    assert command.amqp_properties()["message_id"] == str(command.event_id)


def test_an_unknown_version_is_rejected() -> None:
    body = RequestImport(producer="g", job_id="j1", kind="edi", user_id="a").model_dump(mode="json")
    with pytest.raises(ValidationError):
        RequestImport.model_validate({**body, "version": 2})


def test_a_colis_command_belongs_to_its_task() -> None:
    command = CreateColis.model_validate(
        {
            "producer": "gateway",
            "task_id": "t1",
            "user_id": "a",
            "lot_id": "L1",
            "colis_data": {
                "client_id": "c1",
                "type_transport": "cargo",
                "longueur": 10,
                "largeur": 10,
                "hauteur": 10,
                "poids": 1,
            },
        }
    )
    assert command.job_id == "t1"


def test_stable_event_ids_are_stable() -> None:
    assert stable_event_id("j", "file", "a") == stable_event_id("j", "file", "a")
    assert stable_event_id("j", "file", "a") != stable_event_id("j", "file", "b")


def test_settings_fail_fast_on_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAUGE_PREFETCH", "-1")
    with pytest.raises(ValidationError):
        ServiceSettings()
    monkeypatch.setenv("JAUGE_PREFETCH", "8")
    monkeypatch.setenv("JAUGE_AMQP_URL", "http://not-amqp")
    with pytest.raises(ValidationError):
        ServiceSettings()


def test_an_import_s_title_and_final_message_have_one_rule() -> None:
    from jauge_shared.contracts import ImportKind
    from jauge_shared.contracts.imports import final_import_message, import_title

    assert import_title(ImportKind.EDI) == "Import des factures EDI"
    assert import_title(ImportKind.BBGR_MONTHLY) == "Import BBGR monthly"
    assert final_import_message(12, 1) == "Import terminé : 12 fichiers traités, 1 en erreur"
    assert final_import_message(1, 0, rows=True) == "Import terminé : 1 ligne traitée"
    assert final_import_message(0, 0) == "Import terminé : aucun fichier à importer"
