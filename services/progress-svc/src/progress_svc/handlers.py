"""progress-svc's handler: message in, service call (the service announces the result).

The queue is read by `jauge_shared.consumer.DirectConsumer` rather than a FastStream
subscriber (docs/performance.md, "FastStream's per-message path"); the body arrives
as bytes and is parsed here, a parse error dead-lettering it with its reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from jauge_shared.contracts import (
    ColisStepChanged,
    FileImported,
    ImportCleanupStarted,
    ImportFinished,
    ImportQueued,
    ImportStarted,
)
from progress_svc.service import ProgressService

ProgressEvent = Annotated[
    ImportQueued
    | ImportStarted
    | ImportCleanupStarted
    | FileImported
    | ImportFinished
    | ColisStepChanged,
    Field(discriminator="type"),
]
_parse_event: TypeAdapter[Any] = TypeAdapter(ProgressEvent)


def on_progress_event(service: ProgressService) -> Callable[[bytes], Awaitable[None]]:
    """The handler of progress-svc's queue (read by `DirectConsumer`, see main.py)."""

    async def handle(body: bytes) -> None:
        await service.handle(_parse_event.validate_json(body))

    return handle
