"""A small client of the gateway for system tests: login, REST, and a WebSocket reader."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import websockets


async def login(base_url: str, username: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.post(
            "/api/auth/token", data={"username": username, "password": password}
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


class Socket:
    """One WebSocket connection that records every frame it receives."""

    def __init__(self, connection: websockets.ClientConnection) -> None:
        self.connection = connection
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, base_url: str, token: str) -> Socket:
        # the token in a header: a URL takes only a short-lived ticket (docs/api.md)
        ws_url = base_url.replace("http://", "ws://") + "/ws"
        headers = {"Authorization": f"Bearer {token}"}
        return cls(await websockets.connect(ws_url, open_timeout=10, additional_headers=headers))

    async def send(self, frame: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(frame))

    async def subscribe(self, topic: str) -> None:
        await self.send({"op": "subscribe", "topic": topic})

    async def until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 60.0
    ) -> dict[str, Any]:
        """Read frames until one satisfies `predicate`; return it."""
        async with asyncio.timeout(timeout_s):
            while True:
                frame = json.loads(await self.connection.recv())
                self.frames.append(frame)
                if predicate(frame):
                    return frame

    async def close(self) -> None:
        await self.connection.close()
