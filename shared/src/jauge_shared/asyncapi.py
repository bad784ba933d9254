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
from pydantic import RootModel

from jauge_shared.contracts import ALL_MESSAGES, ColisRpcRequest, Command, message_type
from jauge_shared.contracts.import_rpc import (
    ImportReportRequest,
    ImportRpcRequest,
    InboxRequest,
    InvoiceSearchRequest,
    RejectedFileRequest,
)
from jauge_shared.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, RK

TITLE = "Jauge messages"


class ImportRpc(RootModel[ImportRpcRequest]):
    """A request of `rpc.import`, whichever its `op`."""


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
    # request/reply reads: the request is published like a command, the reply goes to
    # the caller's Direct Reply-To queue (its schema is in the request's description)
    for request_model, reply in (
        (ImportReportRequest, "ImportReport"),
        (InvoiceSearchRequest, "InvoiceList"),
        (InboxRequest, "InboxCounts"),
        (RejectedFileRequest, "RejectedFile"),
    ):
        broker.publisher(
            RK.IMPORT_RPC,
            exchange=COMMANDS_EXCHANGE,
            schema=request_model,
            title=f"{RK.IMPORT_RPC} ({request_model.model_fields['op'].default})",
            description=f"{(request_model.__doc__ or '').strip()} Reply: {reply}.",
        )
    # every read on the wire's one routing key, for a consumer that validates by key
    broker.publisher(
        RK.IMPORT_RPC,
        exchange=COMMANDS_EXCHANGE,
        schema=ImportRpc,
        title=RK.IMPORT_RPC,
        description="Any read of import-svc, by its `op` (the channels above, one each).",
    )
    broker.publisher(
        RK.COLIS_RPC,
        exchange=COMMANDS_EXCHANGE,
        schema=ColisRpcRequest,
        title=RK.COLIS_RPC,
        description=(ColisRpcRequest.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        + " Reply: ColisRpcReply.",
    )
    spec = AsyncAPI(broker, title=TITLE, version=VERSION, schema_version="3.0.0")
    document: dict[str, Any] = spec.to_specification().to_jsonable()
    return document


def render() -> str:
    return json.dumps(build_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
