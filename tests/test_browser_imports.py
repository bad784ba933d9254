"""The imports page in a real browser: log in, start an EDI import, watch the gauge live.

Real chromium, real gateway, import-svc and progress-svc, real RabbitMQ and FerretDB.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser_support import agent_browser, login, playwright, screenshot
from playwright.sync_api import expect
from stack import add_user

from jauge_testkit.import_files import make_interchange, sample_invoice

pytestmark = pytest.mark.system

FINAL = "Import terminé : 5 fichiers traités, 1 en erreur"


def write_inbox(data_dir: Path, good: int, bad: int) -> None:
    inbox = data_dir / "inbox" / "edi"
    inbox.mkdir(parents=True, exist_ok=True)
    for i in range(good):
        invoices = [sample_invoice(i % 3 + 1, f"F{i:03d}-{n}", n_lines=3) for n in range(2)]
        (inbox / f"fournisseur-{i:03d}.edi").write_bytes(
            make_interchange(invoices, sender="SUP", receiver="JAUGE", ref=f"R{i}")
        )
    for i in range(bad):
        (inbox / f"vide-{i}.edi").write_bytes(b"")


def test_an_agent_follows_an_edi_import_live_and_another_agent_sees_none_of_it(
    make_stack, test_env
) -> None:
    stack = make_stack()
    stack.start_all()
    stack.wait_ready()
    add_user(test_env.env(), "alice", "agent", "alice-password")
    add_user(test_env.env(), "bob", "agent", "bob-password")
    write_inbox(test_env.data_dir, good=4, bad=1)
    gateway = stack.service("gateway").url

    with (
        playwright() as driver,
        agent_browser(driver, gateway) as alice,
        agent_browser(driver, gateway) as bob,
    ):
        # pages need a session: a wrong password says so in French, then the right one works
        alice.goto("/")
        alice.wait_for_url("**/login*")
        alice.get_by_label("Identifiant").fill("alice")
        alice.get_by_label("Mot de passe").fill("pas-le-bon")
        alice.get_by_role("button", name="Se connecter").click()
        expect(alice.locator("#flash")).to_contain_text("Identifiant ou mot de passe incorrect")
        screenshot(alice, "01-connexion-erreur")
        login(alice, "alice", "alice-password")
        login(bob, "bob", "bob-password")
        expect(alice.get_by_role("heading", name="Imports de fichiers")).to_be_visible()
        expect(alice.locator("#gauge")).to_contain_text("Aucun import en cours")

        alice.get_by_role("button", name="Factures fournisseurs EDI").click()
        expect(alice.locator("#flash")).to_contain_text("Import demandé")
        gauge = alice.locator("#gauge .gauge")
        expect(gauge.locator(".final")).to_have_text(FINAL, timeout=60_000)
        expect(gauge.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
        expect(gauge.locator(".processed")).to_have_text("5 / 5")
        expect(gauge.locator(".duration")).to_have_text(re.compile(r"^\d+ s$|^\d+ min \d\d s$"))
        # the errors column appears because one file failed, with its name
        errors = gauge.locator("table.errors")
        expect(errors).to_be_visible()
        expect(errors.locator("tbody tr")).to_have_count(1)
        expect(errors).to_contain_text("vide-0.edi")
        job_id = gauge.get_attribute("data-job-id")
        assert job_id
        row = alice.locator(f'#recent tr[data-job-id="{job_id}"]')
        expect(row).to_contain_text("Terminé")
        expect(row).to_contain_text("5 / 5")
        screenshot(alice, "02-imports-termine")

        # the report: one line per file
        row.get_by_role("link", name="Voir le rapport").click()
        alice.wait_for_url(f"**/imports/{job_id}")
        report = alice.locator("#report table")
        expect(report.locator("tbody tr")).to_have_count(5)
        expect(report.locator("tr.row-error")).to_contain_text("vide-0.edi")
        expect(alice.locator("#gauge .final")).to_have_text(FINAL)
        screenshot(alice, "03-rapport-import")

        # bob saw none of it, live or on reload, and cannot open it
        expect(bob.locator("#gauge")).to_contain_text("Aucun import en cours")
        expect(bob.locator("#recent")).not_to_contain_text("Terminé")
        assert bob.locator(f'[data-job-id="{job_id}"]').count() == 0
        bob.reload()
        expect(bob.locator("#recent tbody")).to_contain_text("Aucun import pour l'instant")
        bob.goto(f"/imports/{job_id}")
        expect(bob.locator("#gauge")).to_contain_text("Import introuvable")

        # logging out closes the pages again
        alice.get_by_role("button", name="Se déconnecter").click()
        alice.wait_for_url("**/login")
        alice.goto("/taches")
        alice.wait_for_url("**/login?next=/taches")
        screenshot(alice, "04-connexion")


def test_the_page_reconnects_after_a_gateway_restart_and_still_follows_imports(
    make_stack, test_env
) -> None:
    stack = make_stack()
    stack.start_all()
    stack.wait_ready()
    add_user(test_env.env(), "alice", "agent", "alice-password")
    write_inbox(test_env.data_dir, good=4, bad=1)
    gateway = stack.service("gateway")

    with playwright() as driver, agent_browser(driver, gateway.url) as alice:
        login(alice, "alice", "alice-password")
        status = alice.locator("#live-status")
        port = gateway.port
        stack.stop(gateway)
        expect(status).to_have_attribute("data-state", "off")
        expect(status).to_contain_text("reconnexion")
        stack.wait_ready([stack.start("gateway", port=port)])
        expect(status).to_have_attribute("data-state", "on", timeout=30_000)

        # the re-subscribed socket still carries the live gauge
        alice.get_by_role("button", name="Factures fournisseurs EDI").click()
        expect(alice.locator("#flash")).to_contain_text("Import demandé")
        expect(alice.locator("#gauge .final")).to_have_text(FINAL, timeout=60_000)
        expect(alice.locator("#recent tbody tr")).to_have_count(1)

        # upload two files instead: exactly those are imported, the gauge follows the new job
        good = make_interchange([sample_invoice(1, "UP-1", n_lines=2)], sender="SUP", ref="U1")
        alice.get_by_label("Type d'import").select_option("edi")
        alice.get_by_label("Fichiers", exact=True).set_input_files(
            [
                {"name": "envoi-1.edi", "mimeType": "application/edifact", "buffer": good},
                {"name": "envoi-2.edi", "mimeType": "application/edifact", "buffer": b"UNA"},
            ]
        )
        alice.get_by_role("button", name="Envoyer et importer").click()
        expect(alice.locator("#flash")).to_contain_text("Import demandé")
        expect(alice.locator("#recent tbody tr")).to_have_count(2)
        final = alice.locator("#gauge .final")
        expect(final).to_have_text(
            re.compile(r"^Import terminé : 2 fichiers traités"), timeout=60_000
        )
        expect(alice.locator("#gauge table.errors")).to_contain_text("envoi-2.edi")
        screenshot(alice, "05-imports-reconnexion")
