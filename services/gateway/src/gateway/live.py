"""Live updates: progress.updated into the read model and out to the sockets, and the
snapshots a subscription starts with (WebSocket and SSE alike).

`LiveUpdates.receive` is all the broker subscriber does; `LiveUpdates.rebuild` runs when
the broker connection comes back (this replica's queue, exclusive, lost what was
published meanwhile): the in-memory views are read again and every socket is offered
its snapshots afresh (issue 14, 7a).
"""

from __future__ import annotations

import logging

from prometheus_client import Counter
from pymongo.errors import PyMongoError

from gateway.hub import JOB_TOPIC_PREFIX, JOBS_TOPIC, NOTIFICATIONS_TOPIC, Connection, Hub
from gateway.jobmetrics import FinishedJobs
from gateway.progress_view import Job, ProgressView
from jauge_shared.mongo import store_unavailable

logger = logging.getLogger("gateway.live")

CLOSE_TRY_AGAIN_LATER = 1013
STORE_AWAY_REASON = "store unavailable, try again later"
REFRESHES = Counter(
    "jauge_gateway_refreshes_total",
    "Times the broker connection came back and the gateway rebuilt its views from the store.",
)


async def offer_snapshot(view: ProgressView, connection: Connection, topic: str) -> None:
    """The topic's current state offered to the connection (`jobs`: the caller's newest
    jobs; `job:<id>`: that job, or `null` if it is not there or not theirs;
    `notifications`: none, the page reads `GET /api/notifications`)."""
    if topic == NOTIFICATIONS_TOPIC:
        return
    if topic == JOBS_TOPIC:
        for job in await view.newest_jobs(connection.user):
            connection.offer(
                (topic, job["id"]), {"type": "snapshot", "topic": topic, "job": job}, 0.0
            )
        return
    job_id = topic.removeprefix(JOB_TOPIC_PREFIX)
    snapshot = await view.snapshot(connection.user, job_id)
    connection.offer((topic, job_id), {"type": "snapshot", "topic": topic, "job": snapshot}, 0.0)


async def resend_snapshots(hub: Hub, view: ProgressView) -> int:
    """Every subscription of every socket (and SSE stream) offered its snapshot again,
    read afresh; returns how many. After the broker connection came back: updates
    published while it was down never reached this replica, and a socket would keep
    showing a task running that has completed. A state the socket already has is not
    sent again (`Connection.offer` drops a snapshot not newer than what it sent)."""
    offered = 0
    for connection in list(hub.connections):
        for topic in list(connection.topics):
            if connection.closed.is_set():
                break
            try:
                await offer_snapshot(view, connection, topic)
            except PyMongoError as e:
                if not store_unavailable(e):
                    raise
                # the store is away: no more reads; every socket closed with a reason
                # reconnects and subscribes again, with snapshots, once it is back
                for every in list(hub.connections):
                    every.fail(CLOSE_TRY_AGAIN_LATER, STORE_AWAY_REASON)
                return offered
            offered += 1
    return offered


class LiveUpdates:
    def __init__(self, hub: Hub, view: ProgressView) -> None:
        self.hub = hub
        self.view = view
        self.finished = FinishedJobs()

    def receive(self, job: Job) -> None:
        """One progress.updated: the read model's memory, the metrics, the sockets."""
        self.view.update(job)
        self.finished.update(job)
        self.hub.dispatch(job)

    async def rebuild(self) -> None:
        """What this replica keeps from progress.updated, read again from the store,
        and every socket's snapshots sent again."""
        self.view.forget()
        try:
            offered = await resend_snapshots(self.hub, self.view)
        except Exception:
            logger.exception("snapshots not sent again after the broker came back")
            return
        REFRESHES.inc()
        logger.info("broker back: views rebuilt", extra={"snapshots": offered})
