"""Lots, parcels and the tasks dashboard in a real browser.

Skipped (with the reason) only when the running gateway does not serve the parcel API yet.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_support import (
    agent_browser,
    doc_screenshot,
    login,
    missing_routes,
    playwright,
    screenshot,
)
from playwright.sync_api import Page, expect
from stack import Stack, add_user

pytestmark = pytest.mark.system

PARCEL_ROUTES = (
    ("get", "/api/clients"),
    ("post", "/api/clients"),
    ("get", "/api/lots"),
    ("post", "/api/lots"),
    ("get", "/api/lots/{lot_id}"),
    ("get", "/api/lots/{lot_id}/colis"),
    ("post", "/api/lots/{lot_id}/colis"),
    ("get", "/api/tasks"),
    ("get", "/api/tasks/stats"),
    ("post", "/api/tasks/{task_id}/retry"),
    ("post", "/api/tasks/{task_id}/cancel"),
)


def start(make_stack: Any, test_env: Any, **env: str) -> Stack:
    stack: Stack = make_stack(**env)
    stack.start_all()
    stack.wait_ready()
    missing = missing_routes(stack.service("gateway").url, *PARCEL_ROUTES)
    if missing:
        pytest.skip("parcel API not served yet: " + ", ".join(missing))
    add_user(test_env.env(), "alice", "agent", "alice-password")
    return stack


def new_client(page: Page, name: str) -> str:
    response = page.request.post("/api/clients", data={"name": name, "phone": "+33 6 12 34 56 78"})
    assert response.status == 201, response.text()
    return str(response.json()["id"])


def fill_parcel(page: Page, client: str, poids: str, test_hooks: str) -> None:
    """The parcel form; `test_hooks` are colis-svc's test directives (JAUGE_TEST_HOOKS)."""
    option = page.locator("#client_id option", has_text=client)
    expect(option.first).to_be_attached()
    print(
        "OPTIONS", page.locator("#client_id").inner_html(), page.request.get("/api/clients").text()
    )
    expect(option).to_have_count(1)
    page.get_by_label("Client").select_option(option.get_attribute("value"))
    page.get_by_label("Longueur (cm)").fill("40")
    page.get_by_label("Largeur (cm)").fill("30")
    page.get_by_label("Hauteur (cm)").fill("20")
    page.get_by_label("Poids (kg)").fill(poids)
    page.get_by_label("Description").fill(f"Pièces détachées [test:{test_hooks}]")


def test_an_agent_creates_a_lot_and_a_parcel_and_follows_the_task_live(
    make_stack, test_env
) -> None:
    stack = start(make_stack, test_env, JAUGE_TEST_HOOKS="true")
    gateway = stack.service("gateway").url
    with playwright() as driver, agent_browser(driver, gateway) as page:
        login(page, "alice", "alice-password", start="/lots")
        new_client(page, "Aminata Koné")
        page.get_by_label("Type de transport").select_option("express")
        page.get_by_role("button", name="Créer le lot").click()
        expect(page.locator("#flash")).to_contain_text(re.compile(r"Lot EXPRESS-\d{11} créé"))
        lot_link = page.locator("#lots tbody a").first
        expect(lot_link).to_have_text(re.compile(r"^EXPRESS-\d{11}$"))
        screenshot(page, "10-lots")
        lot_link.click()
        page.wait_for_url(re.compile(r"/lots/[^/]+$"))
        expect(page.locator("#lot-title")).to_have_text(re.compile(r"^Lot EXPRESS-"))
        expect(page.locator("#colis tbody")).to_contain_text("Aucun colis dans ce lot")

        # the form refuses a parcel without weight, in French, next to the field
        # a pause at each step, so the bar is seen moving
        fill_parcel(page, "Aminata Koné", "", "delay=0.4")
        page.get_by_label("Poids (kg)").fill("")
        page.get_by_role("button", name="Ajouter à la file").click()
        expect(page.locator("#flash")).to_contain_text("Données invalides")
        expect(page.get_by_label("Poids (kg)")).to_have_attribute("aria-invalid", "true")

        dashboard = page.context.new_page()
        dashboard.goto("/taches")
        expect(dashboard.locator("#live-status")).to_have_attribute("data-state", "on")

        page.get_by_label("Poids (kg)").fill("12.5")
        page.get_by_role("button", name="Ajouter à la file").click()
        expect(page.locator("#flash")).to_contain_text("Colis ajouté à la file de traitement")
        task = page.locator("#tasks .task").first
        task_id = task.get_attribute("data-task-id")
        assert task_id

        # the dashboard shows it among the active tasks, with a live bar, then completed
        active = dashboard.locator(f"#list-active #task-{task_id}")
        expect(active).to_be_visible()
        expect(active.get_by_role("progressbar")).not_to_have_attribute("aria-valuenow", "100")
        screenshot(dashboard, "11-taches-en-cours")
        done = dashboard.locator(f"#list-completed #task-{task_id}")
        expect(done).to_be_visible(timeout=30_000)
        expect(done.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
        expect(done).to_contain_text("Finalisé")
        expect(dashboard.locator('[data-stat="completed_today"]')).to_have_text("1")
        expect(dashboard.locator('[data-stat="success_rate"]')).to_have_text("100 %")
        screenshot(dashboard, "12-taches-terminee")

        # in place on the lot page: the task ends and the parcel appears with its price
        expect(task.locator(".task-done")).to_contain_text("enregistré")
        row = page.locator("#colis tbody tr").first
        expect(row).to_contain_text(re.compile(r"Aminata Koné"))
        expect(row).to_contain_text(re.compile(r"\d"))
        numero = row.locator("td").first.inner_text()
        assert numero and numero != "–"
        screenshot(page, "13-lot-colis")
        doc_screenshot(page, "colis-creation")

        done.get_by_role("link", name="Voir le colis").click()
        dashboard.wait_for_url(re.compile(r"/colis/[^/]+$"))
        expect(dashboard.locator("#colis-title")).to_have_text(f"Colis {numero}")

        # an unknown lot is a clear French 404, not a blank page
        dashboard.goto("/lots/lot-inconnu")
        expect(dashboard.locator("#flash")).to_contain_text("introuvable")

        # colis-svc away: the page says the service is unavailable, and to retry
        stack.stop(stack.service("colis-svc"))
        dashboard.goto("/lots")
        expect(dashboard.locator("#lots tbody")).to_contain_text(
            "réessayez dans un instant", timeout=20_000
        )
        screenshot(dashboard, "17-lots-service-indisponible")


def test_an_agent_retries_a_failed_task_with_corrected_data_and_cancels_another(
    make_stack, test_env
) -> None:
    # each task's first validation fails transiently (a test directive in the
    # description); the automatic retry is an hour away, so the agent acts first
    stack = start(
        make_stack,
        test_env,
        JAUGE_TEST_HOOKS="true",
        JAUGE_MAX_RETRIES="2",
        JAUGE_TASK_RETRY_BASE_S="3600",
        JAUGE_TASK_RETRY_MAX_S="3600",
    )
    gateway = stack.service("gateway").url
    with playwright() as driver, agent_browser(driver, gateway) as page:
        login(page, "alice", "alice-password", start="/taches")
        new_client(page, "Kofi Mensah")
        lot = page.request.post("/api/lots", data={"type_lot": "cargo"})
        assert lot.status == 201, lot.text()
        lot_id = lot.json()["id"]
        page.goto(f"/lots/{lot_id}")
        task_ids = []
        for poids in ("8", "9"):
            fill_parcel(page, "Kofi Mensah", poids, "fail=validation:transient*1")
            page.get_by_role("button", name="Ajouter à la file").click()
            expect(page.locator("#flash")).to_contain_text("Colis ajouté", timeout=15_000)
            task_ids.append(page.locator("#tasks .task").first.get_attribute("data-task-id"))
        first, second = task_ids
        assert first and second and first != second

        page.goto("/taches")
        failed = page.locator("#list-failed")
        expect(failed.locator(".task")).to_have_count(2, timeout=30_000)
        card = failed.locator(f"#task-{first}")
        expect(card).to_contain_text("Tentative 0/2")
        expect(card.locator(".task-error")).not_to_be_empty()
        screenshot(page, "14-taches-echec")

        # correct the weight and relaunch: the task runs again and completes
        card.get_by_text("Corriger et relancer").click()
        expect(card.get_by_label("Poids (kg)")).to_have_value("8")
        card.get_by_label("Poids (kg)").fill("15")
        screenshot(page, "15-taches-correction")
        doc_screenshot(page, "taches-correction")
        card.get_by_role("button", name="Relancer avec ces données").click()
        expect(page.locator("#flash")).to_contain_text("relancée")
        done = page.locator(f"#list-completed #task-{first}")
        expect(done).to_be_visible(timeout=30_000)
        expect(done).to_contain_text("15")
        task = page.request.get(f"/api/tasks/{first}").json()
        assert task["step_status"] == "completed"
        colis = page.request.get(f"/api/colis/{task['colis_id']}").json()
        assert float(colis["poids"]) == 15

        # cancel the other one: it leaves the dashboard, and no parcel is made
        page.once("dialog", lambda dialog: dialog.accept())
        failed.locator(f"#task-{second}").get_by_role("button", name="Annuler la tâche").click()
        expect(page.locator(f"#task-{second}")).to_have_count(0, timeout=30_000)
        expect(page.locator("#flash")).to_contain_text("annulation demandée")
        assert page.request.get(f"/api/tasks/{second}").json()["step_status"] == "cancelled"
        expect(page.locator('[data-count="failed"]')).to_have_text("0")
        expect(page.locator('[data-stat="active_now"]')).to_have_text("0")
        expect(page.locator('[data-stat="completed_today"]')).to_have_text("1")
        screenshot(page, "16-taches-apres-annulation")
        colis_list = page.request.get(f"/api/lots/{lot_id}/colis").json()
        assert len(colis_list) == 1

        # a closed lot takes no more parcels: the page says so and the form is off
        assert page.request.post(f"/api/lots/{lot_id}/close").ok
        page.goto(f"/lots/{lot_id}")
        expect(page.locator("#flash")).to_contain_text("n'est plus ouvert")
        expect(page.get_by_role("button", name="Ajouter à la file")).to_be_disabled()
