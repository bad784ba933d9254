"""Finding things in a real browser: the header's search box (a misspelt tracking number,
a lot number), and the filtered, paged lists of the task dashboard and the imports page.

Real chromium, the whole stack, real RabbitMQ and FerretDB. The parcels and imports the
person looks for are made through the API first (the pages that make them have their own
browser tests); pages are 2 long (`?taille=2`) so that "Suivant" has something to do.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from browser_support import agent_browser, doc_screenshot, login, playwright
from playwright.sync_api import APIRequestContext, Page, Route, expect
from stack import add_user
from system_imports_support import write_inbox

from jauge_testkit.import_files import make_interchange, sample_invoice

pytestmark = pytest.mark.system

FORM = {"type_transport": "cargo", "longueur": "40", "largeur": "30", "hauteur": "20"}


def items(body: Any) -> list[dict[str, Any]]:
    return body if isinstance(body, list) else body["items"]


def wait_until(check: Any, what: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"still waiting for {what}")


def parcels_in_a_lot(api: APIRequestContext, clients: list[str]) -> tuple[dict[str, Any], list]:
    """A cargo lot and one parcel per client in it, every task completed."""
    lot = api.post("/api/lots", data={"type_lot": "cargo"}).json()
    for n, client in enumerate(clients):
        form = {**FORM, "client_id": client, "poids": str(5 + n)}
        accepted = api.post(f"/api/lots/{lot['id']}/colis", multipart=form)
        assert accepted.status == 202, accepted.text()

    def all_done() -> list[dict[str, Any]] | None:
        done = api.get(f"/api/lots/{lot['id']}/colis").json()
        return items(done) if len(items(done)) == len(clients) else None

    return lot, wait_until(all_done, "the parcels")


def search(page: Page, text: str) -> None:
    box = page.get_by_role("searchbox", name="Rechercher un colis ou un lot")
    box.fill(text)
    box.press("Enter")


def test_a_person_finds_a_parcel_a_lot_and_pages_through_filtered_lists(
    make_stack, test_env
) -> None:
    stack = make_stack()
    stack.start_all()
    stack.wait_ready()
    add_user(test_env.env(), "alice", "agent", "alice-password")
    add_user(test_env.env(), "root", "admin", "root-password")
    gateway = stack.service("gateway").url

    with playwright() as driver, agent_browser(driver, gateway) as page:
        login(page, "alice", "alice-password", start="/taches")
        clients = ["cli-demo-1", "cli-demo-1", "cli-demo-1", "cli-demo-2"]
        lot, parcels = parcels_in_a_lot(page.request, clients)
        parcel = next(p for p in parcels if p["client_id"] == "cli-demo-2")
        numero: str = parcel["numero_suivi"]  # TS20261207-7KQ2M9XH

        # a tracking number as read over the phone: lower case, a space, O for 0
        typed = numero.lower().replace("-", " ").replace("0", "o")
        search(page, typed)
        page.wait_for_url(re.compile(rf"/colis/{re.escape(parcel['id'])}$"))

        # a lot number, lower case and without its dash
        page.goto("/taches")
        search(page, lot["numero_lot"].lower().replace("-", ""))
        page.wait_for_url(re.compile(rf"/lots/{re.escape(lot['id'])}$"))
        expect(page.locator("#lot-title")).to_contain_text(lot["numero_lot"])

        # two neighbours swapped: not found as typed, the parcel offered instead
        body = numero[11:]
        slip = numero[:11] + body[1] + body[0] + body[2:] if body[0] != body[1] else numero
        search(page, slip)
        offer = page.locator("#recherche-resultats")
        if slip != numero:
            expect(offer).to_contain_text("Vouliez-vous dire")
            expect(offer.get_by_role("link")).to_have_text(re.compile(re.escape(numero)))
        doc_screenshot(page, "recherche")
        search(page, "TS20000101-ZZZZZZZZ")
        expect(offer).to_contain_text("Aucun colis ni lot ne correspond")

        # the dashboard: completed tasks of this lot and client, two a page
        page.goto("/taches?taille=2")
        filters = page.get_by_role("form", name="Filtrer les tâches")
        filters.get_by_label("Lot").select_option(label=lot["numero_lot"])
        filters.get_by_label("Client").select_option("cli-demo-1")
        filters.get_by_role("button", name="Filtrer").click()
        done = page.locator("#list-completed .task")
        expect(done).to_have_count(2)
        expect(page.locator("#list-failed .task")).to_have_count(0)
        pager = page.get_by_role("navigation", name="Pages : tâches complétées")
        first_page = {done.nth(i).get_attribute("id") for i in range(2)}
        doc_screenshot(page, "taches-filtres")
        pager.get_by_role("button", name="Suivant").click()
        expect(pager).to_contain_text("Page 2")
        expect(done).to_have_count(1)
        assert done.first.get_attribute("id") not in first_page
        expect(pager.get_by_role("button", name="Suivant")).to_be_hidden()
        assert "lot=" in page.url and "client=cli-demo-1" in page.url  # a view to share

        # three imports of alice's, then the admin's list: alice's EDI imports, two a page
        for i in range(3):
            # an empty inbox is refused (409): one small supplier file before each import,
            # written once the import before has ended (a running import takes what the
            # inbox holds when it lists it: this file too, had it come that early)
            invoice = sample_invoice(i + 1, f"F-FIND-{i}", n_lines=1)
            write_inbox(test_env.data_dir, "edi", {f"find-{i}.edi": make_interchange([invoice])})
            started = page.request.post("/api/imports", data={"kind": "edi"})
            assert started.status == 202, started.text()
            job_id = started.json()["job_id"]
            wait_until(
                lambda job_id=job_id: (
                    page.request.get(f"/api/jobs/{job_id}").json().get("status") == "completed"
                ),
                "an import",
            )

        def finished() -> bool:
            jobs = page.request.get("/api/jobs", params={"kind": "import"}).json()["items"]
            return len(jobs) == 3 and all(j["status"] == "completed" for j in jobs)

        wait_until(finished, "the imports")

    with playwright() as driver, agent_browser(driver, gateway) as admin:
        login(admin, "root", "root-password")
        admin.goto("/?taille=2")
        filters = admin.get_by_role("form", name="Filtrer les imports")
        filters.get_by_label("Type").select_option("import.edi")
        filters.get_by_label("État").select_option("completed")
        filters.get_by_label("Lancé par").fill("alice")
        filters.get_by_role("button", name="Filtrer").click()
        rows = admin.locator("#recent tbody tr[data-job-id]")
        expect(rows).to_have_count(2)
        pager = admin.get_by_role("navigation", name="Pages : imports")
        doc_screenshot(admin, "imports-filtres")
        pager.get_by_role("button", name="Suivant").click()
        expect(rows).to_have_count(1)
        pager.get_by_role("button", name="Précédent").click()
        expect(rows).to_have_count(2)

        # a page of the API may come back empty with more after it (a rare filter: a
        # bounded number of entries read per page): the list follows it at once
        def empty_then_real(route: Route) -> None:
            url = route.request.url
            if "cursor=" not in url:
                route.fulfill(json={"items": [], "next_cursor": "nothingHereYet"})
            else:
                route.continue_(url=re.sub(r"&?cursor=nothingHereYet", "", url))

        jobs_pages = re.compile(r".*/api/jobs\?.*")
        admin.route(jobs_pages, empty_then_real)
        with admin.expect_request(lambda request: "cursor=nothingHereYet" in request.url):
            filters.get_by_role("button", name="Filtrer").click()
        expect(rows).to_have_count(2)
        admin.unroute(jobs_pages)
        # nobody else's: bob started nothing
        filters.get_by_label("Lancé par").fill("bob")
        filters.get_by_role("button", name="Filtrer").click()
        expect(admin.locator("#recent tbody")).to_contain_text("Aucun import")
