"""Page speed on a full store (issue 16): every page's first paint, and the time of each
API request it makes, in Chromium, for an agent and an admin, on a store seeded with
10,000 parcels, 1,000 imports and 50,000 invoices (`jauge_tools.seed`).

    make bench-pages            # or: .venv/bin/python bench/pages_bench.py [--parcels N ...]

Prints one line per page and user (first-contentful-paint, the slowest API request) and
the API requests themselves; writes reports/bench/pages.json. The aim: first paint under
300 ms on this machine (docs/performance.md, "Pages on a full store").
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchkit import ROOT, bench_env, write_report
from pymongo import MongoClient

sys.path.insert(0, str(ROOT / "tests"))
from browser_support import CHROMIUM, CHROMIUM_ARGS
from playwright.sync_api import Page, sync_playwright
from stack import add_user

from jauge_shared.contracts.progress_lists import END, LISTS_COLLECTION, when
from jauge_tools.seed import seed

PAGES = ("/", "/lots", "/lots/seed-lot-0", "/taches", "/imports/seed-import-0")
RUNS = 3
FCP = (
    "() => (performance.getEntriesByType('paint')"
    ".find(e => e.name === 'first-contentful-paint') || {}).startTime"
)


def measure(page: Page, path: str) -> tuple[float, dict[str, float]]:
    """One visit: first paint (ms) and each API request's duration (ms)."""
    started: dict[object, float] = {}
    api: dict[str, float] = {}

    done: set[object] = set()
    last = [time.perf_counter()]

    def on_request(request: object) -> None:
        started[request] = last[0] = time.perf_counter()

    def on_finished(request: object) -> None:
        url = getattr(request, "url", "")
        done.add(request)
        last[0] = time.perf_counter()
        if "/api/" in url and request in started:
            path = "/" + url.split("//", 1)[-1].split("/", 1)[-1]
            key = f"{getattr(request, 'method', 'GET')} {path}"
            api[key] = (time.perf_counter() - started[request]) * 1000

    page.on("request", on_request)
    page.on("requestfinished", on_finished)
    page.on("requestfailed", on_finished)
    try:
        page.goto(path, wait_until="load")
        # the page's API requests done: none in flight for 0.5 s (a socket is open all
        # along, so Playwright's "networkidle" never comes)
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline:
            page.wait_for_timeout(100)
            pending = [r for r in started if "/api/" in getattr(r, "url", "") and r not in done]
            if not pending and time.perf_counter() - last[0] > 0.5:
                break
        fcp = page.evaluate(FCP)
    finally:
        page.remove_listener("request", on_request)
        page.remove_listener("requestfinished", on_finished)
        page.remove_listener("requestfailed", on_finished)
    return float(fcp or 0.0), api


def explain(mongo_url: str, prefix: str) -> list[dict[str, object]]:
    """FerretDB's plan (SQLite's EXPLAIN QUERY PLAN) of the reads behind the pages: a
    `SEARCH ... USING INDEX` reads one row, a `SCAN` (or no pushdown) reads the whole
    collection. MongoDB answers with its own planner output (shown as it is)."""
    now = datetime.now(UTC)
    today = when(now.replace(hour=0, minute=0, second=0, microsecond=0))

    def entries(list_prefix: str, since: str = "") -> dict[str, object]:
        return {"_id": {"$gte": list_prefix + since, "$lt": list_prefix + END}}

    newest, limit = [("_id", -1)], 101
    reads: list[tuple[str, str, dict[str, object], list[tuple[str, int]] | None, int]] = [
        ("gateway", "notifications", {"_id": "alice"}, None, 0),
        ("gateway", "productivity_days", {"_id": now.strftime("%Y-%m-%d")}, None, 0),
        ("gateway", "productivity_clocks", {"_id": "seed-task-0"}, None, 0),
        ("gateway", "users", {"_id": "alice"}, None, 0),
        ("progress", "progress", {"_id": "seed-task-0"}, None, 0),
        # the progress lists' pages (/ and /taches): ranges of their entries' `_id`s
        ("progress", LISTS_COLLECTION, entries("jobs|import|alice|"), newest, limit),
        ("progress", LISTS_COLLECTION, entries("jobs|import|*|"), newest, limit),
        ("progress", LISTS_COLLECTION, entries("tasks|active|alice|"), [("_id", 1)], limit),
        ("progress", LISTS_COLLECTION, entries("tasks|failed|*|"), newest, limit),
        ("progress", LISTS_COLLECTION, entries("tasks|completed|alice|"), newest, limit),
        # /api/tasks/stats: today's tasks and those running
        ("progress", LISTS_COLLECTION, entries("jobs|colis|alice|", today), newest, 100),
        ("progress", LISTS_COLLECTION, entries("tasks|busy|*|"), newest, 100),
        # the lots and a lot's parcels: chains of links by `_id` (colis_svc/lot_index.py)
        ("colis", "lot_links", {"_id": "days:1"}, None, 0),
        ("colis", "lot_numbers", {"_id": "CARGO-20261207001"}, None, 0),
        ("colis", "lot_links", {"_id": "parcels:seed-lot-0:1"}, None, 0),
        ("colis", "lots", {"_id": "seed-lot-0"}, None, 0),
        ("colis", "colis", {"_id": "seed-colis-0"}, None, 0),
        ("colis", "client_names", {"_id": {"$gte": "", "$lt": "~"}}, [("_id", 1)], 200),
        ("colis", "clients", {"_id": "cli-0001"}, None, 0),
        (
            "colis",
            "lot_numbers",
            {"_id": {"$gte": "CARGO-20261207", "$lt": "CARGO-20261207~"}},
            None,
            0,
        ),
        ("import", "jobs", {"_id": "seed-import-0"}, None, 0),
        ("import", "files", {"_id": "seed-import-0:0"}, None, 0),
    ]
    out: list[dict[str, object]] = []
    with MongoClient(mongo_url) as client:
        for db, collection, query, sort, at_most in reads:
            command: dict[str, object] = {"find": collection, "filter": query}
            if sort:
                command["sort"] = dict(sort)
            if at_most:
                command["limit"] = at_most
            answer = client[f"{prefix}_{db}"].command("explain", command, verbosity="queryPlanner")
            plan = " ".join(str(p) for p in (answer.get("queryPlanner") or {}).get("Plan", []))
            if not plan:
                plan = str(answer.get("queryPlanner"))[:120]
            uses = "USING INDEX" in plan or "USING PRIMARY KEY" in plan
            if plan in ("{}", "None"):
                plan = "no plan: the collection does not exist"
            shown = f"{db}.{collection} {query} sort={sort} limit={at_most or None}"
            row = {"read": shown, "index": uses, "plan": plan}
            out.append(row)
            verdict = "index" if uses else ("none " if plan.startswith("no plan") else "SCAN ")
            print(f"{verdict}  {row['read']}", flush=True)
    return out


def sign_in(page: Page, user: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Identifiant").fill(user)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(lambda url: "/login" not in url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parcels", type=int, default=10_000)
    parser.add_argument("--imports", type=int, default=1_000)
    parser.add_argument("--invoices", type=int, default=50_000)
    args = parser.parse_args()
    results: list[dict[str, object]] = []
    with bench_env() as env:
        t0 = time.perf_counter()
        asyncio.run(
            seed(
                env.mongo_url,
                env.db_prefix,
                args.parcels,
                args.imports,
                args.invoices,
                ["alice", "bob", "carla"],
            )
        )
        print(f"seeded in {time.perf_counter() - t0:.1f} s", flush=True)
        for name, role in (("alice", "agent"), ("root", "admin")):
            add_user(env.env(), name, role, f"{name}-password")
        stack = env.stack()
        stack.start_all()
        try:
            stack.wait_ready(timeout_s=120)
            gateway = stack.service("gateway").url
            with sync_playwright() as driver:
                browser = driver.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=False
                )
                for user in ("alice", "root"):
                    context = browser.new_context(base_url=gateway, locale="fr-FR")
                    page = context.new_page()
                    sign_in(page, user, f"{user}-password")
                    for path in PAGES:
                        measure(page, path)  # warm: the gateway's first read of a view
                        paints, calls = [], {}
                        for _ in range(RUNS):
                            fcp, api = measure(page, path)
                            paints.append(fcp)
                            for key, ms in api.items():
                                calls.setdefault(key, []).append(ms)
                        row = {
                            "user": user,
                            "page": path,
                            "fcp_ms": round(statistics.median(paints), 1),
                            "api_ms": {
                                k: round(statistics.median(v), 1) for k, v in sorted(calls.items())
                            },
                        }
                        results.append(row)
                        slowest = max(row["api_ms"].values(), default=0.0)  # type: ignore[union-attr]
                        print(
                            f"{user:6} {path:26} first paint {row['fcp_ms']:7.1f} ms"
                            f"   slowest API {slowest:7.1f} ms",
                            flush=True,
                        )
                        for key, ms in row["api_ms"].items():  # type: ignore[union-attr]
                            print(f"         {ms:8.1f} ms  {key}")
                    context.close()
                browser.close()
        except BaseException:
            traceback.print_exc()  # now: the clean-up below may take a while
            raise
        finally:
            stack.stop_all()
        # after the visits: the gateway's collections exist by then
        plans = explain(env.mongo_url, env.db_prefix)
    path = write_report("pages", {"seed": vars(args), "pages": results, "plans": plans})
    print(f"report: {Path(path).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
