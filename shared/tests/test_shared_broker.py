"""The heartbeat of `JAUGE_HEARTBEAT_S` reaches the URL aiormq reads it from."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry

from jauge_shared.broker import amqp_url, broker_options, make_broker
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
