"""A request waiting for its reply gets a 503 as soon as the RPC connection is lost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import HTTPException

from gateway.rpc import RpcClient, ask_raw, unavailable
from gateway.rpc_session import Session


class SentNowhere:
    """An exchange whose messages are never answered, and its open channel and connection."""

    is_closed = False

    def __init__(self) -> None:
        self.sent = asyncio.Event()

    async def publish(self, message: Any, routing_key: str) -> None:
        self.sent.set()


async def test_a_lost_connection_answers_the_waiting_requests_with_a_503_at_once() -> None:
    client = RpcClient("amqp://guest:guest@127.0.0.1:1/", "gateway-test/rpc", 60)
    nowhere = SentNowhere()
    session = Session(nowhere, nowhere, nowhere, "echo")  # type: ignore[arg-type]
    client._session = session
    asking = asyncio.create_task(ask_raw(client, "colis.rpc", b"{}", "des colis"))
    await nowhere.sent.wait()

    # what aio-pika calls when the connection is reset or heartbeats find it dead
    client._on_connection_lost(None, ConnectionResetError("reset"))

    with pytest.raises(HTTPException) as refused:
        await asyncio.wait_for(asking, 1)  # long before the 60 s deadline
    assert refused.value.status_code == 503
    assert refused.value.detail == unavailable("des colis")
    assert not client._pending
    assert not session.usable  # the next request opens a new connection


async def test_no_broker_is_a_503_and_readyz_says_the_path_is_down() -> None:
    client = RpcClient("amqp://guest:guest@127.0.0.1:1/", "gateway-test/rpc", 5)
    with pytest.raises(HTTPException) as refused:
        await ask_raw(client, "colis.rpc", b"{}", "des colis")
    assert refused.value.status_code == 503
    assert await client.round_trip_works(2.0) is False


class ConfirmCancelled:
    """An exchange whose confirm is cancelled, as aiormq does to the confirms still
    awaited when heartbeats declare the connection dead."""

    is_closed = False

    async def publish(self, message: Any, routing_key: str) -> None:
        raise asyncio.CancelledError


async def test_a_request_whose_confirm_is_cancelled_gets_a_503_not_a_500() -> None:
    client = RpcClient("amqp://guest:guest@127.0.0.1:1/", "gateway-test/rpc", 5)
    cancelled = ConfirmCancelled()
    client._session = Session(cancelled, cancelled, cancelled, "echo")  # type: ignore[arg-type]

    with pytest.raises(HTTPException) as refused:
        await ask_raw(client, "colis.rpc", b"{}", "des colis")

    assert refused.value.status_code == 503
    assert refused.value.detail == unavailable("des colis")
