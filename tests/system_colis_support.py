"""Helpers of the parcel (colis) system tests: a stack with fast retries, a client."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from stack import Stack, add_user
from system_client import login

from jauge_shared.blobs import PHOTO_UPLOADS, PHOTOS

FAST = {
    "JAUGE_TASK_RETRY_BASE_S": "0.05",
    "JAUGE_TASK_RETRY_MAX_S": "0.2",
    "JAUGE_SWEEPER_INTERVAL_S": "0.2",
    # this test machine is shared and loaded: give replies time rather than 504s
    "JAUGE_RPC_TIMEOUT_S": "20",
}
TERMINAL = {"completed", "failed_final", "cancelled"}
FORM = {
    "client_id": "cli-demo-1",
    "type_transport": "cargo",
    "longueur": "50",
    "largeur": "40",
    "hauteur": "30",
    "poids": "7.5",
    "mode_paiement": "comptant",
    "description": "Pièces détachées",
}


def start(make_stack: Callable[..., Stack], env: dict[str, str], **extra: str) -> Stack:
    stack = make_stack(**{**FAST, **extra})
    stack.start_all()
    stack.wait_ready()
    add_user(env, "alice", "agent", "alice-password")
    add_user(env, "bob", "agent", "bob-password")
    add_user(env, "root", "admin", "root-password")
    return stack


def photo_bytes(width: int = 2400, height: int = 1800, quality: int = 90) -> bytes:
    image = Image.effect_mandelbrot((width, height), (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def expected_price(form: dict[str, str]) -> str:
    """The tariff formula of DESIGN.md with the default tariff (XOF, no decimals)."""
    longueur, largeur, hauteur = (Decimal(form[k]) for k in ("longueur", "largeur", "hauteur"))
    poids = Decimal(form["poids"])
    if form["type_transport"] == "bateau":
        raw = longueur * largeur * hauteur / Decimal(1_000_000) * Decimal(300000)
    else:
        rate = Decimal(10000) if form["type_transport"] == "cargo" else Decimal(15000)
        raw = max(poids, longueur * largeur * hauteur / Decimal(5000)) * rate
    return str(max(raw, Decimal(5000)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


class Api:
    def __init__(self, base_url: str, token: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    @classmethod
    async def as_user(cls, base_url: str, username: str) -> Api:
        return cls(base_url, await login(base_url, username, f"{username}-password"))

    async def close(self) -> None:
        await self.http.aclose()

    async def lot(self, type_lot: str = "cargo") -> dict[str, Any]:
        response = await self.http.post("/api/lots", json={"type_lot": type_lot})
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def create_colis(
        self, lot_id: str, form: dict[str, str] | None = None, photo: bytes | None = None
    ) -> httpx.Response:
        files = {"image": ("photo.jpg", photo, "image/jpeg")} if photo is not None else None
        return await self.http.post(f"/api/lots/{lot_id}/colis", data=form or FORM, files=files)

    async def create_burst(
        self, lot_id: str, count: int, photo: bytes | None, steps: str = ""
    ) -> list[str]:
        """`count` parcels posted at once (descriptions "Colis <i> <steps>"), each
        accepted with its 202; their task ids."""
        forms = [{**FORM, "description": f"Colis {i} {steps}".rstrip()} for i in range(count)]
        responses = await asyncio.gather(
            *(self.create_colis(lot_id, form, photo=photo) for form in forms)
        )
        assert [r.status_code for r in responses] == [202] * count, responses[0].text
        return [r.json()["task_id"] for r in responses]

    async def task(self, task_id: str) -> dict[str, Any] | None:
        response = await self.http.get(f"/api/tasks/{task_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait(
        self,
        task_id: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda t: t["step_status"] in TERMINAL,
        timeout_s: float = 60.0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            last = await self.task(task_id)
            if last is not None and predicate(last):
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"task {task_id} never got there; last seen: {last}")


def blob_ids(env: dict[str, str], bucket: str) -> list[str]:
    """The files of one of colis-svc's GridFS buckets (jauge_shared.blobs)."""
    from pymongo import MongoClient

    with MongoClient(env["JAUGE_MONGO_URL"]) as client:
        db = client[f"{env['JAUGE_DB_PREFIX']}_colis"]
        return sorted(str(doc["_id"]) for doc in db[f"{bucket}.files"].find({}, {"_id": 1}))


def stored_images(env: dict[str, str]) -> list[str]:
    """colis-svc's processed photos (`<task>.jpg`, `<task>.thumb.jpg`)."""
    return blob_ids(env, PHOTOS)


def uploads(env: dict[str, str]) -> list[str]:
    """Photos not yet taken over: blobs handed to colis-svc, and finished files left in the
    gateway's own folder (its notes, hidden, aside)."""
    folder = Path(env["JAUGE_DATA_DIR"]) / "uploads" / "colis"
    left = (
        [p.name for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []
    )
    return sorted([*blob_ids(env, PHOTO_UPLOADS), *left])


@dataclass
class SharedStack:
    """A module-scoped stack on a `shared_environment`: its processes and environment."""

    stack: Stack
    env: dict[str, str]

    @property
    def gateway(self) -> str:
        return self.stack.service("gateway").url

    @property
    def data_dir(self) -> Path:
        return Path(self.env["JAUGE_DATA_DIR"])


def shared_environment(servers: Any, tmp: Path) -> tuple[dict[str, str], Callable[[], None]]:
    """Like conftest's `test_env`, for a module-scoped stack: a vhost, a database prefix and
    a data folder of its own; returns the environment and a function that removes them."""
    import secrets
    from urllib.parse import quote, urlsplit, urlunsplit

    from pymongo import MongoClient

    name = "t" + secrets.token_hex(4)
    vhost = f"jauge-{name}"
    management = httpx.Client(
        base_url=servers.management_url, auth=servers.management_auth, timeout=10
    )
    management.put(f"/api/vhosts/{quote(vhost, safe='')}").raise_for_status()
    management.put(
        f"/api/permissions/{quote(vhost, safe='')}/{servers.management_auth[0]}",
        json={"configure": ".*", "write": ".*", "read": ".*"},
    ).raise_for_status()
    base = urlsplit(servers.amqp_url)
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True)
    env = {
        "JAUGE_AMQP_URL": urlunsplit(
            (base.scheme, base.netloc, "/" + quote(vhost, safe=""), "", "")
        ),
        "JAUGE_MONGO_URL": servers.mongo_url,
        "JAUGE_DB_PREFIX": name,
        "JAUGE_DATA_DIR": str(data_dir),
        "JAUGE_JWT_SECRET": "test-secret-" + "x" * 40,
        "JAUGE_LOG_JSON": "true",
        "JAUGE_RETRY_BASE_DELAY_S": "0.05",
        "JAUGE_RETRY_MAX_DELAY_S": "0.5",
    }

    def remove() -> None:
        management.delete(f"/api/vhosts/{quote(vhost, safe='')}")
        management.close()
        with MongoClient(servers.mongo_url) as client:
            for db in client.list_database_names():
                if db.startswith(name + "_"):
                    client.drop_database(db)

    return env, remove
