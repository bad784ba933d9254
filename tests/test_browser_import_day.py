"""An accountant's day of imports in a real browser (issue 16, items 3–6).

Before: the buttons say how many files wait in each inbox, an emptied inbox is refused
in French. During: the files scroll by as they are done, the error table grows, the
phase and the time left show. Control: a running import is cancelled, its unread files
go back to the inbox with exact counts. Report: the CSV, a rejected file and its reason
downloaded, the failed files relaunched after replacing one by upload, and the two
reports linked both ways.

Real chromium, gateway, import-svc and progress-svc, RabbitMQ and FerretDB. Each file
is held `JAUGE_TEST_FILE_DELAY_S` before it is read (a test-only setting), so there is
time to watch and to cancel.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from browser_support import agent_browser, doc_screenshot, login, playwright
from playwright.sync_api import expect
from system_imports_support import start_import_stack, write_inbox

from jauge_testkit.import_files import make_bbgr_csv, make_interchange, sample_invoice

pytestmark = pytest.mark.system

DELAY_S = "1.0"


def edi(n: int) -> bytes:
    return make_interchange([sample_invoice(n % 3 + 1, f"J-{n}", n_lines=2)], ref=f"J{n}")


def inbox(data_dir: Path, kind: str = "edi") -> list[str]:
    return sorted(p.name for p in (data_dir / "inbox" / kind).iterdir())


def test_an_accountants_day_of_imports(make_stack, test_env) -> None:
    data = test_env.data_dir
    first_batch = {f"fournisseur-{i}.edi": edi(i) for i in range(4)}
    first_batch |= {"vide-0.edi": b"", "vide-1.edi": b"UNA:+.? 'pas de l'EDIFACT"}
    write_inbox(data, "edi", first_batch)
    write_inbox(data, "bbgr_monthly", {"mensuel.csv": make_bbgr_csv("bbgr_monthly", 3)})
    (data / "inbox" / "bbgr_retours").mkdir(parents=True, exist_ok=True)
    stack = start_import_stack(make_stack, test_env.env(), JAUGE_TEST_FILE_DELAY_S=DELAY_S)

    # the shared machine is loaded: the live gauge may take a while to move
    expect.set_options(timeout=60_000)
    try:
        run_the_day(stack.service("gateway").url, data)
    finally:
        expect.set_options(timeout=5_000)


def run_the_day(gateway: str, data: Path) -> None:
    with playwright() as driver, agent_browser(driver, gateway) as page:
        login(page, "alice", "alice-password")

        # --- before: the buttons say what waits -------------------------------------
        buttons = page.locator("#import-buttons")
        edi_button = buttons.locator('button[data-kind="edi"]')
        expect(edi_button).to_have_text("Factures fournisseurs EDI (6 fichiers)")
        retours = buttons.locator('button[data-kind="bbgr_retours"]')
        expect(retours).to_have_text("Retours BBGR (aucun fichier)")
        expect(retours).to_be_disabled()
        monthly = buttons.locator('button[data-kind="bbgr_monthly"]')
        expect(monthly).to_have_text("Mensuel BBGR (1 fichier)")
        doc_screenshot(page, "imports-avant")
        # someone else took the monthly file meanwhile: refused at once, in French
        (data / "inbox" / "bbgr_monthly" / "mensuel.csv").unlink()
        monthly.click()
        expect(page.locator("#flash")).to_contain_text("Aucun fichier à importer")
        expect(page.locator("#flash")).to_contain_text("« Mensuel BBGR » est vide")
        expect(monthly).to_have_text("Mensuel BBGR (aucun fichier)")
        expect(monthly).to_be_disabled()

        # --- during: the files scroll by, the errors pile up ------------------------
        edi_button.click()
        expect(page.locator("#flash")).to_contain_text("Import demandé")
        gauge = page.locator("#gauge .gauge")
        expect(gauge.locator(".phase")).to_have_text("Phase : Traitement des fichiers")
        expect(gauge.locator(".recent-files li").first).to_have_text(
            re.compile(r"^(Fichier \S+ importé|Erreur fichier \S+)$")
        )
        expect(gauge.locator(".eta")).to_contain_text("Temps restant estimé")
        expect(gauge.locator(".cancel-import")).to_be_visible()
        page.locator("#gauge-section").scroll_into_view_if_needed()
        doc_screenshot(page, "imports-pendant")
        expect(gauge.locator(".final")).to_have_text(
            "Import terminé : 6 fichiers traités, 2 en erreur", timeout=60_000
        )
        expect(gauge.locator("table.errors tbody tr")).to_have_count(2)
        expect(gauge.locator(".recent-files")).to_contain_text("Erreur fichier vide-0.edi")
        expect(gauge.locator(".recent-files")).to_contain_text("Fichier fournisseur-0.edi importé")
        first_id = gauge.get_attribute("data-job-id")
        assert first_id
        expect(edi_button).to_have_text("Factures fournisseurs EDI (aucun fichier)")

        # --- control: a running import cancelled -------------------------------------
        write_inbox(data, "edi", {f"lot-{i:02d}.edi": edi(10 + i) for i in range(20)})
        page.reload()
        expect(edi_button).to_have_text("Factures fournisseurs EDI (20 fichiers)")
        edi_button.click()
        gauge = page.locator("#gauge .gauge")
        expect(gauge.locator(".recent-files li").first).to_be_visible()  # one file done
        gauge.locator(".cancel-import").click()
        expect(page.locator("#flash")).to_contain_text("Annulation demandée")
        final = gauge.locator(".final")
        expect(final).to_have_text(
            re.compile(r"^Import annulé : \d+ fichiers? traités? ; \d+ non traités?, remis"),
            timeout=30_000,
        )
        expect(gauge).to_have_attribute("data-status", "cancelled")
        counts = re.search(r"(\d+) fichiers? traités? ; (\d+) non", final.inner_text())
        assert counts is not None
        done, back = int(counts.group(1)), int(counts.group(2))
        assert done >= 1 and done + back == 20
        assert len(inbox(data)) == back  # exactly the unread files are back
        expect(gauge.locator(".processed")).to_have_text(f"{done} / 20")
        page.locator("#gauge-section").scroll_into_view_if_needed()
        doc_screenshot(page, "imports-controle")

        # --- report: CSV, a rejected file and its reason -----------------------------
        page.goto(f"/imports/{first_id}")
        report = page.locator("#report table")
        expect(report.locator("tbody tr")).to_have_count(6)
        with page.expect_download() as download:
            page.get_by_role("link", name="Télécharger le rapport (CSV)").click()
        text = Path(download.value.path()).read_text(encoding="utf-8-sig")
        rows = list(csv.reader(io.StringIO(text), delimiter=";"))
        assert rows[0] == ["Fichier", "État", "Motif", "Factures", "Lignes"]
        assert len(rows) == 7
        assert {r[1] for r in rows[1:]} == {"Importé", "En erreur"}
        bad = report.locator("tr", has_text="vide-0.edi")
        with page.expect_download() as note:
            bad.get_by_role("link", name="Motif (.txt)").click()
        assert Path(note.value.path()).read_text(encoding="utf-8").strip()  # the reason
        doc_screenshot(page, "imports-rapport")

        # --- relaunch the failed files, one replaced by upload -----------------------
        page.locator("#retry-files").set_input_files(
            [{"name": "vide-0.edi", "mimeType": "application/edifact", "buffer": edi(99)}]
        )
        page.get_by_role("button", name="Relancer les fichiers en erreur (2)").click()
        page.wait_for_url(re.compile(r"/imports/(?!" + first_id + r")[0-9a-f]+$"))
        retry_id = page.url.rsplit("/", 1)[1]
        expect(page.locator("#gauge .final")).to_have_text(
            "Import terminé : 2 fichiers traités, 1 en erreur", timeout=60_000
        )
        expect(page.locator("#report table tbody tr")).to_have_count(2)
        expect(page.locator("#report-links .retry-of")).to_contain_text(first_id)
        page.locator("#report-links .retry-of a").click()
        page.wait_for_url(f"**/imports/{first_id}")
        expect(page.locator("#report-links .retried-by")).to_contain_text(retry_id)
        expect(page.locator("#retry-form")).to_have_count(0)
