"""A request waiting for its reply gets a 503 as soon as the RPC connection is lost."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import HTTPException

from gateway.rpc import RpcClient, ask_raw, unavailable


class SentNowhere:
    """An exchange whose messages are never answered, and its open channel."""

    is_closed = False

    def __init__(self) -> None:
        self.sent = asyncio.Event()

    async def publish(self, message: Any, routing_key: str) -> None:
        self.sent.set()


async def test_a_lost_connection_answers_the_waiting_requests_with_a_503_at_once() -> None:
    client = RpcClient("amqp://guest:guest@127.0.0.1:1/", "gateway-test/rpc")
    nowhere = SentNowhere()
    client._channel = client._exchange = nowhere  # type: ignore[assignment]
    state = SimpleNamespace(rpc=client, settings=SimpleNamespace(rpc_timeout_s=60))
    asking = asyncio.create_task(ask_raw(state, "colis.rpc", b"{}", "des colis"))  # type: ignore[arg-type]
    await nowhere.sent.wait()

    # what aio-pika calls when the connection is reset or heartbeats find it dead
    client._on_connection_lost(None, ConnectionResetError("reset"))

    with pytest.raises(HTTPException) as refused:
        await asyncio.wait_for(asking, 1)  # long before the 60 s deadline
    assert refused.value.status_code == 503
    assert refused.value.detail == unavailable("des colis")
    assert not client._pending
