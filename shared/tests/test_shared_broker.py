"""The heartbeat of `JAUGE_HEARTBEAT_S` reaches the URL aiormq reads it from."""

from __future__ import annotations

import asyncio
import socket
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from jauge_shared.broker import (
    ClusterConnection,
    amqp_url,
    amqp_urls,
    broker_options,
    connect_robust,
    make_broker,
)
from jauge_shared.settings import ServiceSettings


def test_the_heartbeat_setting_is_added_to_the_url() -> None:
    settings = ServiceSettings(amqp_url="amqp://u:p@rabbit:5672/jauge", heartbeat_s=4)
    assert amqp_url(settings) == "amqp://u:p@rabbit:5672/jauge?heartbeat=4"
    default = ServiceSettings(amqp_url="amqp://u:p@rabbit:5672/jauge?frame_max=8192")
    assert amqp_url(default) == "amqp://u:p@rabbit:5672/jauge?frame_max=8192&heartbeat=10"


def test_a_heartbeat_in_the_url_wins() -> None:
    settings = ServiceSettings(amqp_url="amqp://u:p@rabbit:5672/jauge?heartbeat=30", heartbeat_s=4)
    assert amqp_url(settings) == "amqp://u:p@rabbit:5672/jauge?heartbeat=30"


def test_the_broker_connects_with_the_heartbeat_and_its_name() -> None:
    settings = ServiceSettings(amqp_url="amqp://u:p@rabbit:5672/jauge", heartbeat_s=4)
    name = broker_options(settings, "import-svc", CollectorRegistry())["client_properties"]["name"]
    broker = make_broker(settings, "import-svc", CollectorRegistry())
    # what FastStream hands to aio-pika's connect_robust, whose query aiormq reads
    query = parse_qs(urlsplit(broker._connection_kwargs["url"]).query)
    assert query["heartbeat"] == ["4"]
    assert query["name"] == [name]


def test_every_node_of_a_cluster_is_kept_with_its_heartbeat() -> None:
    settings = ServiceSettings(
        amqp_url="amqp://u:p@r1:5672/j, amqp://u:p@r2:5673/j,amqp://u:p@r3:5674/j?heartbeat=3",
        heartbeat_s=4,
    )
    assert amqp_urls(settings) == (
        "amqp://u:p@r1:5672/j?heartbeat=4",
        "amqp://u:p@r2:5673/j?heartbeat=4",
        "amqp://u:p@r3:5674/j?heartbeat=3",
    )
    broker = make_broker(settings, "import-svc", CollectorRegistry())
    assert urlsplit(broker._connection_kwargs["url"]).netloc == "u:p@r1:5672"
    assert broker._connection_kwargs["connection_class"].keywords["urls"] == amqp_urls(settings)


def test_a_list_with_a_bad_url_is_refused() -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(amqp_url="amqp://u:p@r1:5672/,http://r2/")


@pytest.mark.system
async def test_a_node_that_does_not_answer_is_skipped(test_env: Any) -> None:
    """The first node of the list is down: the connection is made with the next one,
    and after losing it, opened again on the next node (here the same live one)."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"amqp://guest:guest@127.0.0.1:{probe.getsockname()[1]}/"
    live = test_env.amqp_url
    connection = await connect_robust(f"{dead},{live}", reconnect_interval=0.2)
    try:
        assert isinstance(connection, ClusterConnection)
        assert connection.url.port == urlsplit(live).port
        channel = await connection.channel()
        await channel.declare_queue("", exclusive=True)
        reconnected = asyncio.Event()
        connection.reconnect_callbacks.add(lambda *_: reconnected.set())
        assert connection.transport is not None
        await connection.transport.connection.close()  # lost: dead, then live again
        await asyncio.wait_for(reconnected.wait(), 30)
        assert connection.url.port == urlsplit(live).port
        await channel.declare_queue("", exclusive=True)
    finally:
        await connection.close()
