"""routers/pages.py: each signed-in page renders its template for a session, with its
path's parameters, and sends anyone without one to /login, back here afterwards."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gateway.deps import SESSION_COOKIE

if TYPE_CHECKING:
    from conftest import Gateway

PAGES = {
    "/": "Factures fournisseurs EDI",
    "/imports/job42": 'data-job-id="job42"',
    "/lots": "Cargo (aérien)",
    "/lots/L7": 'data-lot-id="L7"',
    "/taches": "Cargo (aérien)",
}


@pytest.mark.parametrize(("path", "shown"), PAGES.items())
async def test_a_page_renders_for_a_session_with_its_parameters(
    gw: Gateway, path: str, shown: str
) -> None:
    async with gw.client() as c:
        c.cookies.set(SESSION_COOKIE, gw.token())
        response = await c.get(path)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert shown in response.text


@pytest.mark.parametrize("path", [p for p in PAGES if p != "/"])
async def test_a_page_without_a_session_goes_to_login_and_back(gw: Gateway, path: str) -> None:
    async with gw.client() as c:
        response = await c.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path}"
