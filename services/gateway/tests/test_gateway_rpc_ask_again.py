"""A read whose request or reply was lost (a broker node dying under the service's
connection) is asked once more at half its deadline; a change is never asked twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import HTTPException

from gateway.rpc import RpcClient, _Session, ask_raw


class LosesTheFirst:
    """An exchange that drops the first request and answers the next ones at once."""

    is_closed = False

    def __init__(self) -> None:
        self.client: RpcClient | None = None
        self.sent: list[str] = []

    async def publish(self, message: Any, routing_key: str) -> None:
        self.sent.append(message.correlation_id)
        if len(self.sent) > 1:
            assert self.client is not None and self.client._session is not None
            future = self.client._session.pending[message.correlation_id]
            future.set_result(b'{"ok": true}')


def client_losing_the_first_request(deadline_s: float) -> tuple[RpcClient, LosesTheFirst]:
    client = RpcClient("amqp://guest:guest@127.0.0.1:1/", "gateway-test/rpc", deadline_s)
    lossy = LosesTheFirst()
    lossy.client = client
    client._session = _Session(lossy, lossy, lossy, "echo")  # type: ignore[arg-type]
    return client, lossy


async def test_a_lost_read_is_asked_again_and_answered_within_its_deadline() -> None:
    client, lossy = client_losing_the_first_request(0.4)

    started = asyncio.get_running_loop().time()
    raw = await ask_raw(client, "colis.rpc", b"{}", "des colis", read=True)

    assert raw == b'{"ok": true}'
    assert len(lossy.sent) == 2 and lossy.sent[0] != lossy.sent[1]
    assert 0.2 <= asyncio.get_running_loop().time() - started < 0.4
    assert not client._pending  # the first request's late reply finds nobody


async def test_a_lost_change_is_not_asked_again_and_times_out() -> None:
    client, lossy = client_losing_the_first_request(0.3)

    with pytest.raises(HTTPException) as refused:
        await ask_raw(client, "colis.rpc", b"{}", "des colis")

    assert refused.value.status_code == 504
    assert len(lossy.sent) == 1
