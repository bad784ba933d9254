"""Another internal system listening to Jauge: its own queue on `jauge.events`.

    python docs/examples/events_listener.py --amqp-url amqp://guest:guest@127.0.0.1:5672/

Declares a durable queue of its own (`--queue`, default `billing.jauge-events`),
binds it to the `jauge.events` topic exchange for `file.imported` and
`colis.step_changed`, and prints one JSON line per event. Jauge does not know this
consumer exists: the queue is ours, so we get every event even while Jauge's own
consumers are busy, and nothing is lost while we are stopped (the queue is durable and
events are persistent).

The rules every consumer of Jauge's events should follow:
- ack after the work is done, so a crash redelivers;
- events may arrive twice: `event_id` is the idempotency key;
- reject (no requeue) what cannot be read, so it goes to our dead-letter queue
  instead of looping.

The bodies are validated with the contracts of `jauge_shared`; a system that does not
want the package can read the same JSON (docs/asyncapi.json describes it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import aio_pika
from pydantic import ValidationError

from jauge_shared.contracts import ColisStepChanged, FileImported
from jauge_shared.topology import EVENTS_EXCHANGE, RK

WANTED = {RK.FILE_IMPORTED: FileImported, RK.COLIS_STEP_CHANGED: ColisStepChanged}


def summary(event: FileImported | ColisStepChanged) -> dict[str, object]:
    if isinstance(event, FileImported):
        return {"job_id": event.job_id, "file": event.item, "ok": event.ok, "error": event.error}
    return {"task_id": event.task_id, "status": event.status, "step": event.step}


async def listen(amqp_url: str, queue_name: str, max_events: int | None) -> None:
    connection = await aio_pika.connect_robust(
        amqp_url, client_properties={"connection_name": f"{queue_name} (example)"}
    )
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=50)
        exchange = await channel.declare_exchange(
            EVENTS_EXCHANGE.name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        dead_letters = await channel.declare_queue(queue_name + ".dlq", durable=True)
        queue = await channel.declare_queue(
            queue_name,
            durable=True,
            arguments={
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dead_letters.name,
            },
        )
        for routing_key in WANTED:
            await queue.bind(exchange, routing_key)
        print(json.dumps({"listening": queue_name, "keys": sorted(WANTED)}), flush=True)

        seen: set[str] = set()  # a real system keeps these in its own store
        received = 0
        async with queue.iterator() as messages:
            async for message in messages:
                model = WANTED.get(message.routing_key or "")
                try:
                    if model is None:
                        raise ValueError(f"unexpected routing key {message.routing_key!r}")
                    event = model.model_validate_json(message.body)
                except (ValueError, ValidationError) as e:
                    print(json.dumps({"rejected": str(e)[:200]}), file=sys.stderr, flush=True)
                    await message.reject(requeue=False)
                    continue
                if str(event.event_id) not in seen:
                    seen.add(str(event.event_id))
                    print(json.dumps({"type": event.type, **summary(event)}), flush=True)
                    received += 1
                await message.ack()
                if max_events is not None and received >= max_events:
                    return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", default="billing.jauge-events")
    parser.add_argument("--max-events", type=int, help="stop after this many events")
    args = parser.parse_args()
    asyncio.run(listen(args.amqp_url, args.queue, args.max_events))


if __name__ == "__main__":
    main()
