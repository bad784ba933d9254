"""The web UI: small server-rendered French pages; live data comes from the API and /ws."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Cookie, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from gateway.deps import SESSION_COOKIE, SettingsDep, UsersDep, user_from_token
from gateway.import_requests import IMPORT_KINDS
from gateway.users import User

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_DIR = WEB_DIR / "static"
templates = Jinja2Templates(directory=WEB_DIR / "templates")

router = APIRouter(include_in_schema=False)

LOT_TYPES: tuple[tuple[str, str], ...] = (
    ("cargo", "Cargo (aérien)"),
    ("express", "Express (aérien)"),
    ("bateau", "Bateau (maritime)"),
)


async def page_user(
    settings: SettingsDep,
    users: UsersDep,
    session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None,
) -> User | None:
    """The user of the session cookie, or None (the page then redirects to /login)."""
    return await user_from_token(session, settings, users)


PageUser = Annotated[User | None, Depends(page_user)]


# a path of this site: "/" then anything but a second slash or a backslash, and no
# whitespace or control character anywhere (browsers drop tabs and newlines from a URL,
# so "/\t/evil.example" is "//evil.example", another site)
_SAME_SITE_PATH = re.compile(r"/(?![/\\])[^\x00-\x20\x7f\\]*")


def same_site_path(next_url: str) -> str:
    """`next_url` if it is a path of this site, else "/": never an open redirect."""
    return next_url if _SAME_SITE_PATH.fullmatch(next_url) else "/"


def login_redirect(next_url: str) -> RedirectResponse:
    target = "/login"
    if next_url and next_url != "/":
        target += "?next=" + quote(next_url, safe="/")
    return RedirectResponse(target, status_code=303)


def render(request: Request, name: str, user: User | None, **context: Any) -> Response:
    if user is None and name != "login.html":
        return login_redirect(request.url.path)
    response = templates.TemplateResponse(
        request, name, {"user": user, "path": request.url.path, **context}
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request,
    settings: SettingsDep,
    users: UsersDep,
    session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None,
) -> Response:
    next_url = same_site_path(request.query_params.get("next", "/"))
    if await user_from_token(session, settings, users) is not None:
        return RedirectResponse(next_url, status_code=303)
    return render(request, "login.html", None, next_url=next_url)


# the signed-in pages: their path, their template, and what the template is given besides
# the user and the path's own parameters (`job_id`, `lot_id`, `colis_id`)
PAGES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("/", "imports.html", {"kinds": IMPORT_KINDS}),
    ("/imports/{job_id}", "import_report.html", {"kinds": IMPORT_KINDS}),
    ("/lots", "lots.html", {"lot_types": LOT_TYPES}),
    ("/lots/{lot_id}", "lot.html", {"lot_types": LOT_TYPES}),
    ("/taches", "taches.html", {"lot_types": LOT_TYPES}),
    ("/colis/{colis_id}", "colis.html", {"lot_types": LOT_TYPES}),
)


def page(template: str, context: dict[str, Any]) -> Any:
    async def show(request: Request, user: PageUser) -> Response:
        return render(request, template, user, **context, **request.path_params)

    return show


for path, template, context in PAGES:
    router.add_api_route(
        path,
        page(template, context),
        methods=["GET"],
        response_class=HTMLResponse,
        name=template.removesuffix(".html"),
    )
