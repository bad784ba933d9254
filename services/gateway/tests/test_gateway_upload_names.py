"""Uploaded file names: stored as given, or refused; never a path."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from gateway.upload_access import safe_file_name


@pytest.mark.parametrize("name", ["factures mars.edi", "Relevé BBGR 03-2024.csv", "a"])
def test_plain_names_are_kept(name: str) -> None:
    assert safe_file_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        None,
        "",
        "   ",
        "../evil.edi",
        "..",
        ".",
        "dossier/f.edi",
        "..\\..\\windows\\f.edi",
        "/etc/passwd",
        ".hidden.edi",
        "nul\x00.edi",
        "ligne\n.edi",
        "x" * 201,
    ],
)
def test_paths_hidden_empty_and_odd_names_are_refused(name: str | None) -> None:
    with pytest.raises(HTTPException) as refused:
        safe_file_name(name)
    assert refused.value.status_code == 400
    assert isinstance(refused.value.detail, str) and refused.value.detail
