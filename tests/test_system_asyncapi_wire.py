"""What goes on the wire is what docs/asyncapi.json says (issue 17).

Another internal system that validates against the published document must accept
every message: a listener of its own, bound to both exchanges with `#` as such a system
would be, captures every command and event of a real run (an EDI import and a parcel
task) and each is validated against the schema of its routing key's channel. Before
the fix, every `progress.updated` carried `job.id` while the document required `job._id`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aio_pika
import jsonschema_rs
import pytest
from system_colis_support import FAST
from system_colis_support import Api as ColisApi
from system_colis_support import start as start_stack
from system_imports_support import Api as ImportApi
from system_imports_support import edi_batch, write_inbox

pytestmark = pytest.mark.system

DOCUMENT = json.loads(
    (Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json").read_text("utf-8")
)


def validator_for(routing_key: str) -> Any:
    """A validator of any message the document lists on the channel `routing_key`."""
    channel = DOCUMENT["channels"][routing_key]
    payloads = []
    for ref in channel["messages"].values():
        name = ref["$ref"].rsplit("/", 1)[-1]
        payloads.append(DOCUMENT["components"]["messages"][name]["payload"])
    return jsonschema_rs.validator_for(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "anyOf": payloads,
            "components": DOCUMENT["components"],
        }
    )


async def test_every_message_of_a_real_run_matches_the_asyncapi_document(
    make_stack, test_env
) -> None:
    stack = start_stack(make_stack, test_env.env(), **FAST)
    gateway = stack.service("gateway").url
    captured: list[tuple[str, bytes]] = []

    connection = await aio_pika.connect_robust(test_env.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        for name in ("jauge.events", "jauge.commands"):
            exchange = await channel.declare_exchange(
                name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            await queue.bind(exchange, "#")

        async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                captured.append((message.routing_key or "", message.body))

        await queue.consume(keep)

        write_inbox(test_env.data_dir, "edi", {n: d for n, (d, _) in edi_batch(3).items()})
        imports = await ImportApi.login(gateway, "alice")
        parcels = await ColisApi.as_user(gateway, "alice")
        try:
            job_id = await imports.start("edi")
            lot = await parcels.lot()
            created = await parcels.create_colis(lot["id"])
            assert created.status_code == 202, created.text
            task = await parcels.wait(created.json()["task_id"])
            assert task["step_status"] == "completed", task
            assert (await imports.finished(job_id))["status"] == "completed"
        finally:
            await imports.close()
            await parcels.close()
        # the last progress.updated of each may still be on its way
        await asyncio.sleep(2)
    finally:
        await connection.close()

    keys = {key for key, _ in captured}
    assert {"import.request", "file.imported", "import.finished"} <= keys, keys
    assert {"colis.create", "colis.step_changed", "progress.updated"} <= keys, keys
    rejected = []
    validators: dict[str, Any] = {}
    for key, body in captured:
        if key not in validators:
            assert key in DOCUMENT["channels"], f"{key} is sent but not in docs/asyncapi.json"
            validators[key] = validator_for(key)
        errors = [
            f"{'/'.join(map(str, e.instance_path))}: {e.message[-160:]}"
            for e in validators[key].iter_errors(json.loads(body))
        ]
        if errors:
            rejected.append((key, errors[:3]))
    assert not rejected, f"{len(rejected)} of {len(captured)} messages rejected: {rejected[:5]}"
