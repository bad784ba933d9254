"""Quorum queues (production's JAUGE_QUEUE_TYPE) declared on the real broker.

Debian's RabbitMQ (3.10 here) accepts every argument the topology gives a quorum queue:
the delivery limit, the dead-letter target and single active consumer.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from jauge_shared.topology import ALL_QUEUES

pytestmark = pytest.mark.system

DELIVERY_LIMIT = 7


def test_every_durable_queue_and_its_dlq_is_a_quorum_queue(make_stack, test_env) -> None:
    stack = make_stack(JAUGE_QUEUE_TYPE="quorum", JAUGE_DELIVERY_LIMIT=str(DELIVERY_LIMIT))
    stack.start_all()
    stack.wait_ready()
    servers = test_env.servers
    response = httpx.get(
        f"{servers.management_url}/api/queues/{quote(test_env.vhost, safe='')}",
        auth=servers.management_auth,
        timeout=10,
    )
    response.raise_for_status()
    queues = {q["name"]: q for q in response.json()}
    for spec in ALL_QUEUES:
        queue = queues[spec.name]
        assert queue["type"] == "quorum", spec.name
        assert queue["durable"] is True, spec.name
        arguments = queue["arguments"]
        assert arguments["x-queue-type"] == "quorum", spec.name
        assert arguments["x-delivery-limit"] == DELIVERY_LIMIT, spec.name
        assert arguments["x-dead-letter-exchange"] == "", spec.name
        assert arguments["x-dead-letter-routing-key"] == spec.dlq_name, spec.name
        assert arguments.get("x-single-active-consumer", False) is spec.single_active_consumer
        dlq = queues[spec.dlq_name]
        assert dlq["type"] == "quorum", spec.dlq_name
        assert dlq["durable"] is True, spec.dlq_name
        assert dlq["arguments"]["x-queue-type"] == "quorum", spec.dlq_name
    # the gateway's per-replica queue stays exclusive and classic: quorum queues
    # cannot be exclusive
    gateway_queues = [q for name, q in queues.items() if name.startswith("gateway.progress.")]
    assert gateway_queues
    assert all(q["exclusive"] and q["type"] == "classic" for q in gateway_queues)
