"""Progress documents: the jobs and tasks the caller may see, from the read model
(`progress_view`), read-only; one job's updates as Server-Sent Events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import anyio
import orjson
from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, BeforeValidator, Field
from starlette.types import Receive, Scope, Send

from gateway import keyset
from gateway.deps import CurrentSession, CurrentUser, HubDep, SessionsDep, SettingsDep, ViewDep
from gateway.errors import AUTHENTICATED, error_responses
from gateway.hub import JOB_TOPIC_PREFIX, Connection
from gateway.list_filters import IsoDate, JobFilters
from gateway.live import offer_snapshot
from gateway.progress_view import NOT_FOUND
from jauge_shared.contracts import ProgressDocument, ProgressStatus

router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=AUTHENTICATED)

SSE_HEARTBEAT_S = 15.0


def iso_only(value: Any) -> Any:
    """ISO 8601 text only: pydantic would also take a number (`0.5`) as a Unix time,
    which the OpenAPI document (`format: date-time`) does not allow."""
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("date et heure ISO 8601 attendues")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(iso_only)]


class JobPage(BaseModel):
    items: list[ProgressDocument]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


@router.get(
    "", response_model=JobPage, response_model_by_alias=True, responses=keyset.BAD_CURSOR_RESPONSE
)
async def list_jobs(
    user: CurrentUser,
    view: ViewDep,
    kind: Annotated[
        str | None,
        Query(
            max_length=40,
            pattern=r"^[a-z_.]+$",
            description="A kind (`import.edi`) or a family of kinds (`import`, `colis`)",
        ),
    ] = None,
    status_: Annotated[ProgressStatus | None, Query(alias="status")] = None,
    since: Annotated[
        IsoDateTime | None, Query(description="Updated at or after (ISO 8601)")
    ] = None,
    day: Annotated[IsoDate | None, Query(description="Started on this day (UTC)")] = None,
    owner: Annotated[
        str | None, Query(max_length=64, description="Admin only: one user's jobs")
    ] = None,
    cursor: keyset.Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """The jobs and tasks the caller may see, newest started first, `limit` a page."""
    filters = JobFilters(kind=kind, status=status_, since=since, day=day, owner=owner)
    items, next_cursor = await view.jobs(user, filters, cursor, limit)
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/{job_id}",
    response_model=ProgressDocument,
    response_model_by_alias=True,
    responses=error_responses(404),
)
async def get_job(job_id: str, user: CurrentUser, view: ViewDep) -> dict[str, Any]:
    return await view.job(user, job_id)


@router.get(
    "/{job_id}/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "snapshot, then updates"},
        **error_responses(404),
    },
)
async def stream_job(
    job_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")],
    current: CurrentSession,
    view: ViewDep,
    hub: HubDep,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> StreamingResponse:
    """Server-Sent Events for clients that cannot open a WebSocket: the same frames.

    The same slow-client rule as the WebSocket: the hub keeps only the newest state of
    the job for this stream, and hands it over only when the response has taken the
    previous one (a queue of one); a reader that takes nothing for `ws_stall_timeout_s`
    is dropped. The stream ends with the session it was opened in (`event: close`).
    """
    user, claims = current
    if await view.hidden_from(user, job_id):
        raise NOT_FOUND
    # one frame at a time: the hub's writer waits for the response to take it, and
    # gives up on a stalled reader after the stall timeout, as for a socket
    frames: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
    connection = Connection(
        user,
        frames.put,
        limit=settings.ws_queue_limit,
        stall_timeout_s=settings.ws_stall_timeout_s,
    )
    topic = JOB_TOPIC_PREFIX + job_id
    connection.subscribe(topic)
    hub.add(connection)
    sessions.add(connection, claims)
    try:
        # read once subscribed: an update between the check and now is not lost
        await offer_snapshot(view, connection, topic)
    except BaseException:  # the store went away meanwhile: a 503, and no socket left behind
        hub.remove(connection)
        sessions.remove(connection)
        raise
    connection.snapshot_sent(topic)

    async def events() -> AsyncIterator[str]:
        writer = asyncio.create_task(connection.run_writer())
        closed = asyncio.create_task(connection.closed.wait())
        frame: asyncio.Task[str] | None = None
        try:
            while True:
                frame = frame or asyncio.create_task(frames.get())
                done, _ = await asyncio.wait(
                    {frame, closed}, timeout=SSE_HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED
                )
                if frame in done:
                    text, frame = frame.result(), None
                    kind = orjson.loads(text)["type"]
                    yield f"event: {kind}\ndata: {text}\n\n"
                elif closed in done:
                    code, reason = connection.close_reason or (1000, "")
                    data = orjson.dumps({"code": code, "reason": reason}).decode()
                    yield f"event: close\ndata: {data}\n\n"
                    return
                else:
                    yield ": keep-alive\n\n"
        finally:
            hub.remove(connection)
            sessions.remove(connection)
            connection.fail(1000, "stream closed")
            for task in (writer, closed, frame):
                if task is not None:
                    task.cancel()

    return DroppableStream(
        events(), connection, media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


class DroppableStream(StreamingResponse):
    """A stream that is dropped once its connection is closed and it cannot end itself.

    A reader that takes nothing leaves the response stuck writing to a full socket,
    where the generator's own end never comes: shortly after the hub gives the
    connection up, the response is cancelled, and the server closes the socket.
    """

    GRACE_S = 1.0

    def __init__(self, content: AsyncIterator[str], connection: Connection, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.connection = connection

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def drop_when_closed() -> None:
                await self.connection.closed.wait()
                await anyio.sleep(self.GRACE_S)
                group.cancel_scope.cancel()

            group.start_soon(drop_when_closed)
            await super().__call__(scope, receive, send)
            group.cancel_scope.cancel()
