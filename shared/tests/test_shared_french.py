"""One table of French validation messages (issue 17: the gateway's parcel form and
colis-svc's task errors each had theirs, and they had drifted)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jauge_shared.french import french_reason


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nom: Annotated[str, Field(min_length=1, max_length=5)]
    poids: Annotated[Decimal, Field(gt=0, le=100, max_digits=4, decimal_places=1)]


def reasons(data: dict[str, object]) -> dict[str, str]:
    with pytest.raises(ValidationError) as raised:
        Form.model_validate(data)
    return {".".join(map(str, e["loc"])): french_reason(e) for e in raised.value.errors()}


def test_each_problem_is_worded_in_french() -> None:
    assert reasons({"nom": "", "poids": "0", "x": 1}) == {
        "nom": "ne doit pas être vide",
        "poids": "doit être supérieur à 0",
        "x": "champ inconnu",
    }
    assert reasons({"nom": "abcdefg", "poids": "abc"}) == {
        "nom": "trop long (5 caractères au plus)",
        "poids": "doit être un nombre",
    }
    assert reasons({"poids": "1.25"}) == {
        "nom": "obligatoire",
        "poids": "1 décimales au plus",
    }
    assert reasons({"nom": "a", "poids": "inf"}) == {"poids": "doit être un nombre"}


def test_the_services_use_the_shared_table() -> None:
    from colis_svc.domain.errors import invalid_data_error
    from gateway.colis_form import invalid_form

    with pytest.raises(ValidationError) as raised:
        Form.model_validate({"nom": "", "poids": "200"})
    task_error = str(invalid_data_error(raised.value))
    assert task_error == (
        "Données invalides : nom ne doit pas être vide ; poids doit être au plus 100"
    )
    form_error = invalid_form(raised.value)
    assert [p["message"] for p in form_error.problems] == [
        "ne doit pas être vide",
        "doit être au plus 100",
    ]
