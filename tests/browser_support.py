"""Real-browser helpers: Debian's chromium driven by Playwright, one fresh profile per agent."""

from __future__ import annotations

import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from stack import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "reports" / "screenshots"
# Screenshots the user guide and docs/ui.md show: taken by the browser tests at each run,
# so that the pictures stay true to the screens.
DOC_SCREENSHOTS = ROOT / "docs" / "img"
TIMEOUT_MS = 30_000


@contextmanager
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with sync_playwright() as driver:
        yield driver


@contextmanager
def agent_browser(driver: Playwright, base_url: str) -> Iterator[Page]:
    """One agent's browser: its own chromium process and a fresh user data dir."""
    with tempfile.TemporaryDirectory(prefix="jauge-chromium-") as profile:
        context: BrowserContext = driver.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=False,  # --headless=new is in the args
            args=CHROMIUM_ARGS,
            base_url=base_url,
            locale="fr-FR",
            timezone_id="Europe/Paris",
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            yield page
        finally:
            context.close()


def login(page: Page, username: str, password: str, start: str = "/") -> None:
    """Open `start`, get sent to /login, sign in, land back on `start`."""
    page.goto(start)
    page.wait_for_url(re.compile(r"/login(\?|$)"))
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(lambda url: "/login" not in url)
    expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def doc_screenshot(page: Page, name: str) -> Path | None:
    """A screenshot for docs/ (the visible window, not the whole page, to keep it small).
    Best effort: it illustrates the docs and proves nothing, and on a loaded machine
    headless Chromium sometimes never hands a frame over (a CI run timed out after 30 s
    in `page.screenshot`, the page itself fine); the test goes on without it."""
    DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = DOC_SCREENSHOTS / f"{name}.png"
    try:
        page.screenshot(path=str(path), full_page=False, animations="disabled", timeout=10_000)
    except PlaywrightTimeoutError:
        warnings.warn(f"doc screenshot {name!r} not taken: Chromium gave no frame", stacklevel=2)
        return None
    return path


def missing_routes(base_url: str, *routes: tuple[str, str]) -> list[str]:
    """The (method, path) pairs the running gateway does not serve, read from /openapi.json."""
    paths = httpx.get(base_url + "/openapi.json", timeout=10).json().get("paths", {})
    return [
        f"{method.upper()} {path}"
        for method, path in routes
        if method.lower() not in paths.get(path, {})
    ]
