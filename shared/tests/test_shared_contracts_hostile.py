"""Every message contract on hostile input (issue 15): it validates or raises
ValidationError, never anything else, and what it lets through is bounded.

Anything that reaches the broker can publish: an id or a file name must not be able to
leave a job's folder (`..`, `/`, NUL), and a decimal must not become a megabyte of text
(`9.99e-999990` is 12 characters that Decimal accepts).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from jauge_shared.contracts import (
    ALL_MESSAGES,
    ColisData,
    CreateColis,
    ImportFile,
    RequestImport,
    RetryColisTask,
    is_file_item,
)
from jauge_shared.contracts.import_rpc import RPC_MODELS, ImportReportRequest

MODELS: list[type[BaseModel]] = [*ALL_MESSAGES, *RPC_MODELS, ColisData]
FORM = {
    "client_id": "c1",
    "type_transport": "cargo",
    "longueur": "10",
    "largeur": "10",
    "hauteur": "10",
    "poids": "1.5",
}
ENVELOPE = {"producer": "gateway", "job_id": "j1"}


# --- decimals -----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["longueur", "largeur", "hauteur", "poids"])
@pytest.mark.parametrize(
    "value",
    ["9.99e-999990", "1e-7", "0.0000001", "1" * 40, "1" * 5000, "NaN", "Infinity", "-0", "1e999"],
)
def test_a_parcel_decimal_out_of_bounds_is_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        ColisData.model_validate({**FORM, field: value})


def test_a_parcel_decimal_in_exponent_notation_is_stored_positionally() -> None:
    data = ColisData.model_validate({**FORM, "longueur": "1E+3", "poids": "2.500"})
    assert data.model_dump(mode="json")["longueur"] == "1000"
    assert str(data.longueur) == "1000" and data.poids == Decimal("2.5")


def test_the_decimal_bound_holds_through_a_command() -> None:
    body = {**ENVELOPE, "task_id": "t1", "user_id": "a", "lot_id": "L1"}
    with pytest.raises(ValidationError):
        CreateColis.model_validate({**body, "colis_data": {**FORM, "poids": "9.99e-999990"}})


def test_the_edits_of_a_retry_are_bounded_in_number() -> None:
    body = {**ENVELOPE, "task_id": "t1", "user_id": "a"}
    RetryColisTask.model_validate({**body, "edits": {"poids": "2"}})
    with pytest.raises(ValidationError):
        RetryColisTask.model_validate({**body, "edits": {f"k{i}": i for i in range(100)}})


# --- ids and file names -------------------------------------------------------------------

ESCAPES = ["..", ".", "../x", "a/../b", "a/b", "/etc", "a\x00b", "a..b", ".hidden", "x" * 65]


@pytest.mark.parametrize("job_id", ESCAPES)
def test_a_job_id_that_could_leave_its_folder_is_refused(job_id: str) -> None:
    with pytest.raises(ValidationError):
        RequestImport.model_validate({**ENVELOPE, "job_id": job_id, "kind": "edi", "user_id": "a"})
    with pytest.raises(ValidationError):
        ImportReportRequest.model_validate({"job_id": job_id})


@pytest.mark.parametrize("upload_id", [*ESCAPES, "a.b", ""])
def test_an_upload_id_that_could_leave_its_folder_is_refused(upload_id: str) -> None:
    with pytest.raises(ValidationError):
        RequestImport.model_validate(
            {**ENVELOPE, "kind": "edi", "user_id": "a", "upload_ids": [upload_id]}
        )


@pytest.mark.parametrize(
    "item", ["..", ".", "../x", "a/b", "/etc/passwd", "a\x00b", "a\\b", ".x", "a\nb", "x" * 256]
)
def test_a_file_item_that_could_leave_its_folder_is_refused(item: str) -> None:
    assert not is_file_item(item)
    with pytest.raises(ValidationError):
        ImportFile.model_validate({**ENVELOPE, "kind": "edi", "item": item, "index": 0})


@pytest.mark.parametrize(
    "item", ["facture.edi", "Relevé BBGR (2).csv", "a..b.edi", "l'été 2024.EDI", "x" * 255]
)
def test_a_real_file_name_is_a_valid_item(item: str) -> None:
    assert is_file_item(item)
    ImportFile.model_validate({**ENVELOPE, "kind": "edi", "item": item, "index": 0})


@pytest.mark.parametrize("job_id", ["0123456789abcdef0123456789abcdef", "cli-1", "a.b", "a:b_c-d"])
def test_the_ids_jauge_makes_are_valid(job_id: str) -> None:
    RequestImport.model_validate({**ENVELOPE, "job_id": job_id, "kind": "edi", "user_id": "a"})


# --- fuzzing ------------------------------------------------------------------------------

HOSTILE_TEXT = st.one_of(
    st.text(max_size=50),
    st.sampled_from(["..", "../../etc/passwd", "a/b", "\x00", "NaN", "-0", ".", "a..b"]),
    st.integers(0, 300_000).map(lambda n: "9" * n),
    st.integers(0, 100_000).map(lambda n: "é/\x00." * n),
)
DECIMAL_TEXT = st.builds(
    "{}e{}".format,
    st.sampled_from(["9.99", "1", "-1", "12345678901234567890"]),
    st.integers(-1_000_000, 1_000_000),
)
SCALARS = st.one_of(
    DECIMAL_TEXT,
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    HOSTILE_TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def bodies(draw: st.DrawFn, model: type[BaseModel]) -> dict[str, Any]:
    """Some fields of `model` with hostile values, the others from a valid message."""
    names = sorted(model.model_fields)
    chosen = draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True))
    body: dict[str, Any] = {**ENVELOPE, "kind": "edi", "user_id": "a", "item": "f.edi"}
    body.update({"index": 0, "task_id": "t1", "lot_id": "L1", "colis_id": "C1"})
    body.update({"colis_data": FORM, **FORM, "ok": True, "status": "completed"})
    body.update({name: draw(VALUES) for name in chosen})
    body.update(draw(st.dictionaries(st.text(max_size=10), VALUES, max_size=3)))
    return body


def decimals_in(value: Any) -> list[Decimal]:
    if isinstance(value, Decimal):
        return [value]
    if isinstance(value, BaseModel):
        return [d for v in dict(value).values() for d in decimals_in(v)]
    if isinstance(value, dict):
        return [d for v in value.values() for d in decimals_in(v)]
    if isinstance(value, list | tuple):
        return [d for v in value for d in decimals_in(v)]
    return []


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_a_contract_validates_or_refuses_hostile_input_and_stays_bounded(
    model: type[BaseModel], data: st.DataObject
) -> None:
    body = data.draw(bodies(model))
    try:
        text = json.dumps(body)
    except ValueError:  # NaN is no JSON: the Python path only
        text = None
    for attempt in ("python", "json"):
        try:
            if attempt == "python":
                message = model.model_validate(body)
            elif text is not None:
                message = model.model_validate_json(text)
            else:
                continue
        except ValidationError:
            continue
        dumped = message.model_dump_json()
        assert len(dumped) <= 4 * len(text or repr(body)) + 4096, model
        for value in decimals_in(message):
            assert len(format(value, "f")) <= 64, value
