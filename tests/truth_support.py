"""What the fault tests check after the fault: every gauge equals its owner's state,
and is in every list it belongs to.

The progress documents (progress-svc's read model) are compared with what import-svc
and colis-svc stored, read straight from their databases, and a supervisor restarts
services that fault points killed.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from pymongo import MongoClient
from stack import Running, Stack

from jauge_shared.contracts.progress_lists import LISTS_COLLECTION, list_keys

# import-svc's job states as a gauge shows them
IMPORT_STATUS = {
    "queued": "queued",
    "running": "running",
    "cleaning": "running",
    "completed": "completed",
    "failed": "failed",
}


def gauge_disagreements(store: MongoClient, db_prefix: str) -> dict[str, Any]:
    """Each progress document that does not say what its owner stored, with both sides."""
    progress = {d["_id"]: d for d in store[f"{db_prefix}_progress"]["progress"].find()}
    wrong: dict[str, Any] = {}
    # every document in each list it belongs to (read after the documents: a writer adds
    # a state's entries before the state, so none may be missing, even mid-write)
    listed = {e["_id"] for e in store[f"{db_prefix}_progress"][LISTS_COLLECTION].find()}
    for job_id, doc in progress.items():
        if missing := list_keys(doc) - listed:
            wrong[job_id] = {"lists": sorted(missing)}
    for task in store[f"{db_prefix}_colis"]["tasks"].find():
        doc = progress.get(task["_id"])
        seen = (doc or {}).get("step_status")
        if seen != task["status"]:
            wrong[task["_id"]] = {"owner": task["status"], "gauge": seen}
    imports = store[f"{db_prefix}_import"]
    for job in imports["jobs"].find():
        doc = progress.get(job["_id"]) or {}
        expected = IMPORT_STATUS[job["state"]]
        if doc.get("status") != expected:
            wrong[job["_id"]] = {"owner": job["state"], "gauge": doc.get("status")}
            continue
        if job["state"] in ("completed", "failed"):
            files = list(imports["files"].find({"job_id": job["_id"]}))
            announced = [f for f in files if f["state"] == "announced"]
            processed = sum(len(f.get("items") or [f]) for f in announced)
            if doc.get("processed") != min(processed, doc.get("total", processed)):
                wrong[job["_id"]] = {"owner": processed, "gauge": doc.get("processed")}
    return wrong


async def until_gauges_agree(
    store: MongoClient, db_prefix: str, timeout_s: float
) -> tuple[float, dict[str, Any]]:
    """Seconds until no gauge disagrees (and what still did when the time ran out)."""
    started = time.monotonic()
    wrong: dict[str, Any] = {}
    while time.monotonic() - started < timeout_s:
        wrong = await asyncio.to_thread(gauge_disagreements, store, db_prefix)
        if not wrong:
            return time.monotonic() - started, {}
        await asyncio.sleep(0.5)
    return time.monotonic() - started, wrong


class Supervisor:
    """Starts again, as systemd or Kubernetes would, any service a fault point killed.

    A restarted service may be killed again before it is even ready (the next fault
    point is on its first message): it is simply started again at the next look.
    """

    def __init__(self, stack: Stack, extra_env: dict[str, dict[str, str]]) -> None:
        self.stack = stack
        self.extra_env = extra_env
        self.restarts: list[str] = []
        self.unexpected: list[tuple[str, int]] = []
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> Supervisor:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        if self._task.done():
            self._task.result()  # the watcher's own failure, if any
        self._task.cancel()
        assert not self.unexpected, f"services that died otherwise: {self.unexpected}"

    async def _watch(self) -> None:
        while True:
            for service in list(self.stack.running):
                code = service.process.poll()
                if code is None:
                    continue
                if code != -signal.SIGKILL:
                    self.unexpected.append((service.spec.name, code))
                self.restart(service)
            await asyncio.sleep(0.2)

    def restart(self, service: Running) -> None:
        name = service.spec.name
        self.stack.running.remove(service)
        self.restarts.append(name)
        self.stack.start(name, extra_env=self.extra_env.get(name))
