"""Partitions: sharing them between replicas, and moving from the single queue to them.

Sharing. Every replica consumes every partition and single active consumer makes one
of them the active one of each; but the broker makes active the consumer that came
first, so the replica started first would get every partition and the others would
only wait. Each replica therefore looks, every `rebalance_interval_s`, at how many
replicas consume (the queues' consumer count) and at the partitions it is active on
(those it received from lately: AMQP 0-9-1 says nothing more): holding more than its
share (partitions / replicas, rounded up), it steps back from one of them, at random
(cancels and consumes again, going behind the others waiting), and the next replica
waiting becomes that partition's active one. A replica that dies has its partitions
taken over by the broker at once, and the next rounds share them out again. The split
ends even when the replicas divide the partitions (6 over 3: 2/2/2); otherwise it may
stop short (4 over 3 can stay 2/2/0: the idle replica cannot ask for one).

Moving.
Before partitioning (and with `JAUGE_PROGRESS_PARTITIONS=1`) progress-svc reads one
queue, `progress-svc.events`, bound to jauge.events. Started with more partitions, a
replica unbinds that queue (it would otherwise keep receiving a copy of every event,
read by nobody) and also consumes what is left in it: its events are applied while the
new ones already go to the partitions. The seq guard of the repository keeps the two
writers a job may have for those moments from losing each other's changes. Once it
is empty the queue may be deleted (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Sequence

import aio_pika
import aio_pika.exceptions

from jauge_shared.broker import amqp_url, connect_robust
from jauge_shared.consumer import DirectConsumer
from jauge_shared.identity import connection_name
from jauge_shared.settings import ServiceSettings
from jauge_shared.topology import EVENTS_EXCHANGE, PROGRESS_EVENTS

logger = logging.getLogger("progress_svc")


async def retire_single_queue(settings: ServiceSettings, service: str) -> bool:
    """Unbinds `progress-svc.events` from jauge.events; True if the queue exists (it
    is then consumed until someone deletes it)."""
    connection = await connect_robust(
        amqp_url(settings),
        client_properties={"connection_name": connection_name(f"{service}.migration")},
    )
    async with connection:
        channel = await connection.channel()
        try:
            queue = await channel.declare_queue(PROGRESS_EVENTS.name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        for routing_key in PROGRESS_EVENTS.routing_keys:
            await queue.unbind(EVENTS_EXCHANGE.name, routing_key)
        left = queue.declaration_result.message_count
        logger.info(
            "single progress queue unbound, read until empty",
            extra={"queue": PROGRESS_EVENTS.name, "messages": left},
        )
        return True


class Rebalancer:
    def __init__(self, consumers: Sequence[DirectConsumer], interval_s: float) -> None:
        self.consumers = consumers
        self.interval_s = interval_s

    async def run_once(self) -> DirectConsumer | None:
        """Steps back from one partition if this replica holds more than its share."""
        replicas = max([await c.consumer_count() for c in self.consumers], default=0)
        if replicas <= 1:
            return None
        share = math.ceil(len(self.consumers) / replicas)
        lately = time.monotonic() - self.interval_s
        active = [c for c in self.consumers if c.last_delivery >= lately]
        if len(active) <= share:
            return None
        victim = random.choice(active)
        await victim.step_back()
        logger.info(
            "stepped back from a partition",
            extra={"queue": victim.queue_name, "active": len(active), "share": share},
        )
        return victim

    async def run_forever(self) -> None:
        while True:
            # replicas started together would otherwise all step back at once
            await asyncio.sleep(self.interval_s * random.uniform(0.75, 1.25))
            try:
                await self.run_once()
            except Exception as e:  # the broker away: the next round tries again
                logger.warning("partition rebalancing failed", extra={"error": repr(e)})
