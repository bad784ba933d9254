"""The AsyncAPI document of every command and event, generated from the contracts.

    python -m jauge_shared.asyncapi > docs/asyncapi.json

The committed copy is checked against a fresh generation by the test suite, so the
document can never drift from the models.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from faststream.rabbit import RabbitBroker
from faststream.specification import AsyncAPI

from jauge_shared.contracts import ALL_MESSAGES, Command, message_type
from jauge_shared.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE

TITLE = "Jauge messages"
VERSION = "1"


def build_document() -> dict[str, Any]:
    broker = RabbitBroker(
        "amqp://guest:guest@localhost:5672/",
        description="Commands on `jauge.commands`, events on `jauge.events` (topic exchanges).",
    )
    for model in ALL_MESSAGES:
        routing_key = message_type(model)
        is_command = issubclass(model, Command)
        broker.publisher(
            routing_key,
            exchange=COMMANDS_EXCHANGE if is_command else EVENTS_EXCHANGE,
            schema=model,
            title=routing_key,
            description=(model.__doc__ or "").strip().split("\n")[0] or None,
        )
    spec = AsyncAPI(broker, title=TITLE, version=VERSION, schema_version="3.0.0")
    document: dict[str, Any] = spec.to_specification().to_jsonable()
    return document


def render() -> str:
    return json.dumps(build_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
