"""A read whose request or reply was lost (a broker node dying under the service's
connection) is asked once more at half its deadline; a change is never asked twice."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import pytest
from fastapi import HTTPException

from gateway.rpc import RpcClient, ask_raw
from gateway.rpc_session import Session


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
    client._session = Session(lossy, lossy, lossy, "echo")  # type: ignore[arg-type]
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


async def test_a_request_the_broker_refuses_is_sent_again_on_a_new_channel() -> None:
    """A nack (a quorum queue without a leader while a cluster elects one): the request
    was not enqueued, so it is sent again until taken, not answered 503 at once."""
    client = RpcClient("amqp://guest:guest@127.0.0.1:1/", "gateway-test/rpc", 5)
    sessions: list[Session] = []

    class Refusing:
        is_closed = False

        def __init__(self, refusals: int) -> None:
            self.refusals = refusals

        async def publish(self, message: Any, routing_key: str) -> None:
            if self.refusals:
                self.refusals -= 1
                raise aio_pika.exceptions.DeliveryError(None, None)  # type: ignore[arg-type]
            future = sessions[-1].pending[message.correlation_id]
            future.set_result(b'{"ok": true}')

    broker = Refusing(refusals=3)

    async def open_session() -> Session:
        sessions.append(Session(broker, broker, broker, "echo"))  # type: ignore[arg-type]
        return sessions[-1]

    client._open = open_session  # type: ignore[method-assign]

    raw = await ask_raw(client, "colis.rpc", b"{}", "des colis")

    assert raw == b'{"ok": true}'
    assert len(sessions) == 4  # a new channel after each refusal


async def test_a_request_refused_until_its_deadline_is_a_503() -> None:
    client = RpcClient("amqp://guest:guest@127.0.0.1:1/", "gateway-test/rpc", 2)

    class AlwaysRefusing:
        is_closed = False

        async def publish(self, message: Any, routing_key: str) -> None:
            raise aio_pika.exceptions.DeliveryError(None, None)  # type: ignore[arg-type]

    async def open_session() -> Session:
        refusing = AlwaysRefusing()
        return Session(refusing, refusing, refusing, "echo")  # type: ignore[arg-type]

    client._open = open_session  # type: ignore[method-assign]

    with pytest.raises(HTTPException) as refused:
        await ask_raw(client, "colis.rpc", b"{}", "des colis")

    assert refused.value.status_code == 503  # not the 504 of a service that was asked
