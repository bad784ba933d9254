"""The parcel form's photo goes to colis-svc after the answer, not before it.

The form answers once the broker has confirmed the task's command. Writing a phone's
photo to colis-svc's `photo_uploads` bucket can take seconds when the store is busy, so
that write now happens in the background, after the answer. Then the task is told
(`colis.photo_ready`), exactly as when the last chunk of a resumable upload arrives
(routers/uploads.py). The command says `image_pending`. A task that reaches its image
step before its photo waits for it without holding a worker (colis-svc's photos.py).

Nothing lives only in memory. Before the command is sent, the photo is already a
finished upload in the UploadStore, bound to its task (its note, its task, its file).
So:
- a gateway killed after its answer hands the photo over when it starts again
  (`resume`);
- a store that is away is tried again until it answers, or until the upload is swept;
- if the notice is lost after the handover, colis-svc's sweeper finds the blob anyway.

A photo that never arrives fails its task at colis-svc's `photo_deadline_s`, with a
French message. The gauge shows what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Coroutine
from typing import Any

import pymongo
from prometheus_client import Counter

from gateway.commands import Publishers, send_command
from gateway.handover import Buckets, hand_over_upload
from gateway.photo_stream import PhotoSink
from gateway.upload_store import UPLOAD_ID, Upload, UploadStore
from jauge_shared.blobs import BlobBeingWritten
from jauge_shared.contracts import PhotoReady
from jauge_shared.faults import FaultPoints

logger = logging.getLogger("gateway.photo_handovers")

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0  # a store back from an outage gets the photo within seconds
# a finished photo untouched this long: its handover died with its process. A live
# handover's file is touched every RESUME_EVERY_S, so replicas sharing the folder never
# resume one another's: after its own failed try a handover may remove its leftovers in
# the store at once (`after_own_failure`), which only the one writer of an id may do.
RESUME_AFTER_S = 30.0
RESUME_EVERY_S = 10.0
HANDOVER_DEADLINE_S = 15.0  # a 15 MB photo takes ~1.5 s on a busy FerretDB

HANDOVERS = Counter(
    "jauge_gateway_photo_handovers_total",
    "Parcel form photos handed over to colis-svc after the answer, by how.",
    ["outcome"],  # handed_over, retried, resumed
)


async def tell_task(publishers: Publishers, upload: Upload) -> None:
    """The task waiting for this photo runs on (a 503 HTTPException if the broker refuses)."""
    if upload.task_id is None:
        return
    await send_command(
        publishers,
        PhotoReady(
            producer="gateway",
            job_id=upload.task_id,
            task_id=upload.task_id,
            user_id=upload.owner,
            upload_id=upload.id,
        ),
    )


class PhotoHandovers:
    """The photos this gateway has answered for and not yet handed over."""

    def __init__(
        self,
        store: UploadStore,
        buckets: Buckets,
        publishers: Publishers,
        concurrency: int = 4,
        faults: FaultPoints | None = None,
    ) -> None:
        self.store = store
        self.buckets = buckets
        self.publishers = publishers
        self.faults = faults or FaultPoints("", store.folder)
        self._slots = asyncio.Semaphore(concurrency)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._resumer: asyncio.Task[None] | None = None

    def keep(self, photo: PhotoSink, owner: str, task_id: str) -> str:
        """The form's photo (its last checks done) kept as an upload bound to the task;
        blocking, for a worker thread. Its id goes in the command."""
        upload_id = photo.finish()
        self.store.adopt(upload_id, owner, photo.size, task_id)
        return upload_id

    def drop(self, upload_id: str) -> None:
        """The command was refused: no task will wait for this photo. Blocking."""
        self.store.discard(upload_id)

    async def after_answer(self, upload_id: str) -> None:
        """Run by the route once its answer is sent (a background task of the response):
        a process that dies now has already told the agent, and `resume` finishes."""
        self.faults.hit("gateway.photo_answered")
        self.hand_over_later(upload_id)

    def hand_over_later(self, upload_id: str) -> None:
        if upload_id not in self._running:
            self._track(upload_id, self._hand_over(upload_id))

    async def hand_over_now(self, store: UploadStore, upload: Upload) -> None:
        """A resumable upload's last chunk, handed over within its request: the client,
        and a task bound to the upload meanwhile (upload_access.bind_upload), rely on
        `complete` once the route answers. Otherwise like the handovers after an answer:
        bounded, one writer per upload, touched while it runs (so no replica resumes it
        meanwhile). One try: its failure is the route's 503, after which the client sends
        the chunk again, or (a photo) the resumer finishes once the file is left untouched.
        `store`: the upload's, a photo's or an import's."""
        running = self._running.get(upload.id)
        if running is None:
            running = self._track(upload.id, self._hand_over_once(store, upload))
        try:
            # shielded: a client that gives up does not cut the write off halfway
            await asyncio.wait_for(asyncio.shield(running), HANDOVER_DEADLINE_S + 1)
        except TimeoutError as e:  # a handover after an answer, still trying
            raise BlobBeingWritten(upload.id) from e

    def _track(self, upload_id: str, handover: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(handover, name=f"photo-handover-{upload_id}")
        self._running[upload_id] = task
        task.add_done_callback(lambda _: self._running.pop(upload_id, None))
        return task

    async def _hand_over_once(
        self, store: UploadStore, upload: Upload, after_own_failure: bool = False
    ) -> None:
        # a store that takes the bytes and never answers must not hold a request or a
        # slot for good (the driver waits forever without a deadline)
        with pymongo.timeout(HANDOVER_DEADLINE_S):
            await hand_over_upload(self.buckets, store, upload, after_own_failure)

    async def _hand_over(self, upload_id: str) -> None:
        delay = RETRY_FIRST_S
        failed = False  # this process's own put of it failed: its leftovers may go at once
        while True:
            upload = await asyncio.to_thread(self.store.get, upload_id)
            if upload is None:
                return  # swept after `photo_upload_age_s`, or dropped
            if not upload.done and not self.store.final(upload).exists():
                return  # handed over by another replica sharing this folder
            try:
                async with self._slots:
                    if upload.done:
                        # a handover that died between its note and the file's removal
                        await asyncio.to_thread(self.store.final(upload).unlink, missing_ok=True)
                    else:
                        await self._hand_over_once(self.store, upload, failed)
                    await tell_task(self.publishers, upload)
            except Exception as e:
                failed = True
                HANDOVERS.labels("retried").inc()
                logger.warning(
                    "photo not handed over yet, trying again",
                    extra={"upload_id": upload_id, "retry_in_s": delay, "error": repr(e)},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            HANDOVERS.labels("handed_over").inc()
            return

    def _left_behind(self, older_than_s: float) -> list[str]:
        """Finished photos untouched for `older_than_s`, not handed over: only the files
        named by their bare id are looked at (not the notes that stay a day after each
        handover)."""
        cutoff = time.time() - older_than_s
        found = []
        with contextlib.suppress(FileNotFoundError):
            for path in self.store.folder.iterdir():
                if not UPLOAD_ID.fullmatch(path.name):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime <= cutoff and self.store.get(path.name):
                        found.append(path.name)
        return found

    async def resume(self, older_than_s: float = RESUME_AFTER_S) -> int:
        """Hands over the finished photos left by a process that stopped before it could."""
        left = await asyncio.to_thread(self._left_behind, older_than_s)
        resumed = [upload_id for upload_id in left if upload_id not in self._running]
        for upload_id in resumed:
            self.hand_over_later(upload_id)
        if resumed:
            HANDOVERS.labels("resumed").inc(len(resumed))
            logger.info("photo handovers resumed", extra={"count": len(resumed)})
        return len(resumed)

    def start(self) -> None:
        self._resumer = asyncio.create_task(self._resume_now_and_then(), name="photo-handovers")

    def _touch_running(self) -> None:
        for upload_id in list(self._running):
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.store.folder / upload_id)

    async def _resume_now_and_then(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._touch_running)
                await self.resume()
            except Exception:
                logger.exception("photo handovers: resume pass failed")
            await asyncio.sleep(RESUME_EVERY_S)

    async def drain(self, timeout_s: float) -> bool:
        """Waits up to `timeout_s` for the handovers running now; True if none is left."""
        running = list(self._running.values())
        if running:
            await asyncio.wait(running, timeout=timeout_s)
        return not self._running

    async def close(self, grace_s: float = 5.0) -> None:
        """Handovers still running after `grace_s` are left to the next start's `resume`."""
        if self._resumer is not None:
            self._resumer.cancel()
        await self.drain(grace_s)
        tasks = [*self._running.values(), *([self._resumer] if self._resumer else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
