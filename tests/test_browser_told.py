"""Being told and seeing one's day, in a real browser (issue 16, points 9 and 10).

A parcel task fails while the agent looks at another page: a toast appears there, the
bell counts it, a reload keeps it, a click marks it read. Then parcels are completed and
the productivity figures of /taches show them, with their chart.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from browser_support import agent_browser, doc_screenshot, login, playwright, screenshot
from playwright.sync_api import Page, expect
from stack import Stack, add_user

pytestmark = pytest.mark.system


def start(make_stack: Any, test_env: Any) -> Stack:
    stack: Stack = make_stack(JAUGE_TEST_HOOKS="true")
    stack.start_all()
    stack.wait_ready()
    add_user(test_env.env(), "alice", "agent", "alice-password")
    add_user(test_env.env(), "root", "admin", "root-password")
    return stack


def add_parcel(page: Page, client: str, poids: str, hooks: str) -> str:
    page.get_by_label("Client").select_option(client)
    page.get_by_label("Longueur (cm)").fill("40")
    page.get_by_label("Largeur (cm)").fill("30")
    page.get_by_label("Hauteur (cm)").fill("20")
    page.get_by_label("Poids (kg)").fill(poids)
    page.get_by_label("Description").fill(f"Pièces détachées [test:{hooks}]")
    page.get_by_role("button", name="Ajouter à la file").click()
    expect(page.locator("#flash")).to_contain_text("Colis ajouté", timeout=15_000)
    task_id = page.locator("#tasks .task").first.get_attribute("data-task-id")
    assert task_id
    return task_id


def test_a_failed_task_is_told_on_another_page_and_the_day_is_counted(make_stack, test_env) -> None:
    stack = start(make_stack, test_env)
    gateway = stack.service("gateway").url
    with playwright() as driver, agent_browser(driver, gateway) as page:
        page.goto("/login")
        expect(page.get_by_label("Identifiant")).to_be_visible()
        doc_screenshot(page, "connexion")
        login(page, "alice", "alice-password", start="/lots")
        client = page.request.post(
            "/api/clients", data={"name": "Awa Diallo", "phone": "+33 6 11 22 33 44"}
        )
        assert client.status == 201, client.text()
        lot = page.request.post("/api/lots", data={"type_lot": "express"})
        assert lot.status == 201, lot.text()
        page.goto(f"/lots/{lot.json()['id']}")
        client_id = str(client.json()["id"])
        expect(page.locator(f'#client_id option[value="{client_id}"]')).to_be_attached()

        # the agent works on the imports page while the parcel fails for good
        other = page.context.new_page()
        other.goto("/")
        expect(other.locator("#live-status")).to_have_attribute("data-state", "on")
        expect(other.locator("#bell-count")).to_be_hidden()
        add_parcel(page, client_id, "7", "fail=validation:permanent")
        toast = other.locator("#toasts .toast.error")
        expect(toast).to_contain_text("a échoué", timeout=30_000)
        expect(other.locator("#bell-count")).to_have_text("1")

        # a reload keeps it; the list names it; a click marks it read
        other.reload()
        expect(other.locator("#bell-count")).to_have_text("1")
        other.locator("#bell").click()
        note = other.locator("#bell-list li.unread")
        expect(note).to_have_count(1)
        expect(note).to_contain_text("a échoué")
        expect(other.locator("#bell-allow")).to_be_visible()  # offered, never asked
        doc_screenshot(other, "notifications")
        note.locator("button").click()
        other.wait_for_url(re.compile(r"/taches$"))
        expect(other.locator("#bell-count")).to_be_hidden()
        listed = other.request.get("/api/notifications").json()
        assert [n["read"] for n in listed["items"]] == [True] and listed["unread"] == 0

        # two parcels completed: each is told, and counted in the day's productivity
        for poids in ("5", "6"):
            add_parcel(page, client_id, poids, "delay=0.2")
        expect(other.locator("#bell-count")).to_have_text("2", timeout=30_000)
        expect(other.locator("#toasts .toast").last).to_contain_text("enregistré")
        row = other.locator('#prod-agents tr[data-agent="alice"]')
        other.reload()
        expect(row.locator("td").nth(1)).to_have_text("2", timeout=20_000)
        expect(row.locator(".per-hour")).to_have_text("2")
        expect(row).to_contain_text("Validation")
        expect(other.locator("#prod-chart svg rect.prod-bar")).to_have_count(24)
        other.get_by_role("button", name="7 derniers jours").click()
        expect(other.locator("#prod-chart svg rect.prod-bar")).to_have_count(7)
        expect(row.locator("td").nth(1)).to_have_text("2")
        other.locator("#productivite").scroll_into_view_if_needed()
        doc_screenshot(other, "productivite")
        screenshot(other, "30-productivite")

    # an admin sees every agent's figures, an agent only his own
    with httpx.Client(base_url=gateway, timeout=10) as http:

        def token(user: str, password: str) -> dict[str, str]:
            answer = http.post("/api/auth/token", data={"username": user, "password": password})
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        admin = http.get(
            "/api/stats/productivity?period=30d", headers=token("root", "root-password")
        )
        assert [a["agent"] for a in admin.json()["agents"]] == ["alice"]
        assert admin.json()["total"]["parcels"] == 2
        root_told = http.get("/api/notifications", headers=token("root", "root-password")).json()
        assert root_told["items"] == []  # owner only, admins included
