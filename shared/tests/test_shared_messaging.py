"""`publish` reports a connection lost under it as a broker failure, not a cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jauge_shared.messaging import is_transient, publish


class Event:
    type = "import.file_imported"

    def amqp_properties(self) -> dict[str, Any]:
        return {}


class Publisher:
    """Waits for a confirm the way aiormq does, on a future of the connection's."""

    def __init__(self) -> None:
        self.confirm: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def publish(self, message: Any, **properties: Any) -> None:
        await self.confirm


async def test_a_confirm_cancelled_by_a_dead_connection_is_a_transient_connection_error() -> None:
    publisher = Publisher()
    sending = asyncio.create_task(publish(publisher, Event()))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    publisher.confirm.cancel()  # what aiormq does to pending confirms when heartbeats fail
    with pytest.raises(ConnectionError) as raised:
        await sending
    assert is_transient(raised.value)
    assert "import.file_imported" in str(raised.value)


async def test_the_callers_own_cancellation_is_still_a_cancellation() -> None:
    sending = asyncio.create_task(publish(Publisher(), Event()))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending


def test_what_a_publish_raises_while_the_broker_restarts_is_transient() -> None:
    """A failure of the broker's, not of the message: retried, never dead-lettered."""
    import aiormq.exceptions as amqp

    assert is_transient(amqp.ChannelInvalidStateError("writer is None"))
    assert is_transient(amqp.DeliveryError(None, None))
    assert is_transient(amqp.ChannelClosed(320, "CONNECTION_FORCED"))
    # refusals a retry cannot mend stay errors
    assert not is_transient(amqp.ChannelAccessRefused(403, "ACCESS_REFUSED"))
    assert not is_transient(amqp.ChannelPreconditionFailed(406, "PRECONDITION_FAILED"))


def test_a_command_is_published_on_the_commands_exchange_and_an_event_on_the_events_one() -> None:
    from faststream.rabbit import RabbitBroker

    from jauge_shared.contracts import ImportFile, ImportFinished
    from jauge_shared.messaging import message_publishers
    from jauge_shared.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE

    publishers = message_publishers(RabbitBroker(), (ImportFile, ImportFinished))

    assert set(publishers) == {"import.file", "import.finished"}
    assert publishers["import.file"].exchange == COMMANDS_EXCHANGE
    assert publishers["import.finished"].exchange == EVENTS_EXCHANGE
