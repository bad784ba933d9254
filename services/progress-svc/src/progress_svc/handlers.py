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
from progress_svc.reconciler import record_if_repair
from progress_svc.repository import ProgressRepository
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


def on_progress_event(
    service: ProgressService, repository: ProgressRepository, partition: str = ""
) -> Callable[[bytes], Awaitable[None]]:
    """The handler of one of progress-svc's partitions (read by `DirectConsumer`, see
    main.py)."""

    async def handle(body: bytes) -> None:
        event = _parse_event.validate_json(body)
        changed = await service.handle(event, partition)
        await record_if_repair(repository, event, changed)

    return handle
