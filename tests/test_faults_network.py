"""A slow or broken network between the services and RabbitMQ (reliability issue,
slow or lossy network).

The four services reach the shared RabbitMQ (the test's own vhost) through a TCP proxy
of the test (tests/netproxy.py), with a 2 s AMQP heartbeat. An EDI import and a burst of
parcels run while the proxy:
- adds latency each way: the work completes exactly, and no connection is taken for
  dead because it is slow;
- blackholes the traffic mid-load (sockets open, no byte moves, no FIN, no RST: only
  heartbeats can tell): every service notices within a few heartbeats and says so on
  /readyz; the gateway refuses new work with a 503 and its French message, never a 500
  or a 202; once the network is back every service reconnects by itself;
- cuts every connection at once mid-load: every service reconnects by itself.
After each fault the import completes with exact counts and every file imported once,
every parcel is created exactly once, and every dead-letter queue is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest
from faults_support import (
    COLIS_UNAVAILABLE,
    COMMAND_NOT_DELIVERED,
    USERS,
    dead_letter_counts,
    dead_lettered_in_logs,
)
from netproxy import FaultyProxy
from stack import Running, Stack, add_user
from system_client import login
from system_colis_support import FAST, FORM
from system_colis_support import Api as ColisApi
from system_imports_support import Api as ImportApi
from system_imports_support import assert_each_file_imported_once, edi_batch, write_inbox

pytestmark = pytest.mark.system

HEARTBEAT_S = 2
# aiormq drops a connection that has received nothing for 3 × (heartbeat + 1) s, and
# looks every heartbeat / 2 s; RabbitMQ drops its end after about 2 heartbeats
HEARTBEAT_GRACE_S = 3 * (HEARTBEAT_S + 1)
# + aiormq's look interval, /readyz polling, and a loaded 2-core machine
DETECTION_BOUND_S = HEARTBEAT_GRACE_S + 3
LATENCY_S = 0.15
# (files, parcels)
LATENCY_LOAD = (20, 6)
FAULT_LOAD = (40, 10)
SLOW_STEPS = "[test:delay=0.2]"
SERVICES = ("progress-svc", "import-svc", "colis-svc", "gateway")


@pytest.fixture
def proxy(servers: Any) -> Iterator[FaultyProxy]:
    """Requested before `make_stack`, so that it closes after the services stopped."""
    broker = urlsplit(servers.amqp_url)
    with FaultyProxy(broker.hostname or "127.0.0.1", broker.port or 5672) as faulty:
        try:
            yield faulty
        finally:
            # a test that failed mid-fault must not leave the services' shutdown hanging
            faulty.latency_s = 0.0
            faulty.restore()


def through(proxy: FaultyProxy, amqp_url: str) -> str:
    parts = urlsplit(amqp_url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def start_services(make_stack: Callable[..., Stack], env: dict[str, str], **worker: str) -> Stack:
    """The four services on `env`; import-svc and colis-svc with `worker` settings too
    (colis-svc's test hooks on: a parcel's description can slow its steps)."""
    stack: Stack = make_stack(**{**env, **FAST})
    stack.start("progress-svc")
    stack.start("import-svc", extra_env=worker)
    stack.start("colis-svc", extra_env={**worker, "JAUGE_TEST_HOOKS": "true"})
    stack.start("gateway")
    for name, role in USERS.items():
        add_user(env, name, role, f"{name}-password")
    stack.wait_ready(timeout_s=180)
    return stack


def proxied_env(proxy: FaultyProxy, test_env: Any) -> dict[str, str]:
    return {
        **test_env.env(),
        "JAUGE_AMQP_URL": through(proxy, test_env.amqp_url),
        "JAUGE_HEARTBEAT_S": str(HEARTBEAT_S),
    }


@dataclass
class Sample:
    asked: float
    answered: float
    status: int  # 0: no answer


class Readiness:
    """Every service's /readyz, polled in the background: who said what, when.

    A service's broker check answers at once while connected and waits up to 2 s for
    the connection otherwise: a 503 asked at t means it was down at t, a 200
    answered at t means it was up by t.
    """

    POLL_S = 0.2

    def __init__(self, services: list[Running]) -> None:
        self.services = services
        self.samples: dict[str, list[Sample]] = {s.spec.name: [] for s in services}
        self._polls: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Readiness:
        self._client = httpx.AsyncClient(timeout=10)
        self._polls = [asyncio.create_task(self._poll(s.spec.name, s.url)) for s in self.services]
        return self

    async def __aexit__(self, *_: object) -> None:
        for poll in self._polls:
            poll.cancel()
        await asyncio.gather(*self._polls, return_exceptions=True)
        await self._client.aclose()

    async def _poll(self, name: str, url: str) -> None:
        while True:
            asked = time.monotonic()
            try:
                status = (await self._client.get(url + "/readyz")).status_code
            except httpx.HTTPError:
                status = 0
            self.samples[name].append(Sample(asked, time.monotonic(), status))
            await asyncio.sleep(self.POLL_S)

    def down_at(self, name: str, since: float) -> float | None:
        return next(
            (s.asked for s in self.samples[name] if s.asked >= since and s.status != 200), None
        )

    def up_at(self, name: str, since: float) -> float | None:
        return next(
            (s.answered for s in self.samples[name] if s.asked >= since and s.status == 200), None
        )

    async def wait(self, seen: Callable[[str], float | None], timeout_s: float) -> dict[str, float]:
        """When each service was first `seen` so, waiting up to `timeout_s` for all."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = {name: seen(name) for name in self.samples}
            if all(t is not None for t in found.values()):
                return {name: t for name, t in found.items() if t is not None}
            await asyncio.sleep(0.1)
        raise AssertionError(f"not every service got there in {timeout_s} s: {found}")


def log_times(log: Path, text: str) -> list[float]:
    """Wall-clock times of the log lines that contain `text`."""
    times = []
    for line in log.read_text(errors="replace").splitlines():
        if text in line:
            with contextlib.suppress(ValueError, KeyError):
                times.append(datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp())
    return times


async def heartbeats(test_env: Any, services: tuple[str, ...]) -> dict[str, int]:
    """Each connection of the test's vhost, by name, and the heartbeat it negotiated,
    once every one of `services` has one (the management API lists them with a lag)."""
    servers = test_env.servers
    vhost = quote(test_env.vhost, safe="")
    found: dict[str, int] = {}
    async with httpx.AsyncClient(auth=servers.management_auth, timeout=10) as client:
        for _ in range(100):
            response = await client.get(f"{servers.management_url}/api/vhosts/{vhost}/connections")
            response.raise_for_status()
            found = {
                str(c.get("client_properties", {}).get("connection_name")): int(c["timeout"])
                for c in response.json()
            }
            if {name.split("@")[0] for name in found} >= set(services):
                return found
            await asyncio.sleep(0.2)
    raise AssertionError(f"not every service is connected: {found}")


@dataclass
class Load:
    """An EDI import and a burst of parcels under way, and who asked for them."""

    job_id: str
    tasks: list[str]
    batch: dict[str, Any]
    lot_id: str
    importer: ImportApi
    poster: ColisApi
    root: ColisApi


@contextlib.asynccontextmanager
async def load(gateway: str, test_env: Any, files: int, parcels: int) -> AsyncIterator[Load]:
    batch = edi_batch(files, seed=files)
    write_inbox(test_env.data_dir, "edi", {name: data for name, (data, _) in batch.items()})
    importer = await ImportApi.login(gateway, "alice")
    poster = ColisApi(gateway, await login(gateway, "bob", "bob-password"))
    root = ColisApi(gateway, await login(gateway, "root", "root-password"))
    try:
        lot = await poster.lot("cargo")
        forms = [
            {**FORM, "poids": f"{1 + i}.5", "description": f"Colis {i} {SLOW_STEPS}"}
            for i in range(parcels)
        ]
        responses = await asyncio.gather(*(poster.create_colis(lot["id"], f) for f in forms))
        assert [r.status_code for r in responses] == [202] * parcels, responses[0].text
        job_id = await importer.start("edi")
        yield Load(
            job_id,
            [r.json()["task_id"] for r in responses],
            batch,
            lot["id"],
            importer,
            poster,
            root,
        )
    finally:
        await importer.close()
        await poster.close()
        await root.close()


async def assert_done_exactly_once(work: Load, test_env: Any, stack: Stack) -> dict[str, float]:
    """The import and every parcel complete, nothing lost, nothing twice, nothing
    dead-lettered; returns when each was done (monotonic)."""
    job = await work.importer.finished(work.job_id, timeout_s=180)
    done = {"import done": time.monotonic()}
    assert job["status"] == "completed", job
    files = len(work.batch)
    assert (job["total"], job["processed"], job["failed"]) == (files, files, 0), job
    finals = {task: await work.root.wait(task, timeout_s=180) for task in work.tasks}
    done["parcels done"] = time.monotonic()
    not_completed = {t: (f["step_status"], f.get("errors")) for t, f in finals.items()}
    not_completed = {t: v for t, v in not_completed.items() if v[0] != "completed"}
    assert not not_completed, not_completed

    with test_env.mongo() as store:
        import_db = store[f"{test_env.db_prefix}_import"]
        colis_db = store[f"{test_env.db_prefix}_colis"]
        assert_each_file_imported_once(import_db, test_env.data_dir, work.job_id, work.batch)
        # a refused import was not queued behind this one either
        assert [j["_id"] for j in import_db["jobs"].find({}, {"_id": 1})] == [work.job_id]
        parcels_by_task = Counter(d["task_id"] for d in colis_db["colis"].find())
        assert parcels_by_task == Counter(set(work.tasks)), parcels_by_task
        numbers = [d["numero_suivi"] for d in colis_db["colis"].find()]
        assert len(set(numbers)) == len(work.tasks), numbers
        assert colis_db["tasks"].count_documents({}) == len(work.tasks)

    assert dead_lettered_in_logs(stack.log_dir) == []
    counts = await dead_letter_counts(test_env)
    assert counts and set(counts.values()) == {0}, counts
    return done


async def under_way(work: Load, test_env: Any) -> tuple[int, int]:
    """Waits until the import has started; the files and parcels done by then (files
    archived by import-svc: progress-svc's count may lag behind)."""
    await work.importer.until(work.job_id, lambda j: j["processed"] >= 3, timeout_s=120)
    archived = len(list((test_env.data_dir / "archive" / "edi").rglob("*.edi")))
    with test_env.mongo() as store:
        parcels = store[f"{test_env.db_prefix}_colis"]["colis"].count_documents({})
    return archived, parcels


def same_processes(stack: Stack, pids: dict[str, int]) -> None:
    exited = {r.spec.name: r.process.poll() for r in stack.running if r.process.poll() is not None}
    assert not exited, f"exited: {exited}"
    assert {r.spec.name: r.process.pid for r in stack.running} == pids


def at(phases: dict[str, float], started: float) -> str:
    return ", ".join(f"{name} {t - started:.1f}" for name, t in phases.items())


def assert_refused(response: httpx.Response, *details: str) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.json()["detail"] in details, response.text


async def test_latency_slows_the_work_which_completes_exactly_without_reconnections(
    proxy: FaultyProxy, make_stack, test_env
) -> None:
    files, parcels = LATENCY_LOAD
    started = time.monotonic()
    stack = start_services(make_stack, proxied_env(proxy, test_env))
    pids = {r.spec.name: r.process.pid for r in stack.running}
    phases = {"ready": time.monotonic()}
    # the setting reaches RabbitMQ: every connection negotiated the 2 s heartbeat
    negotiated = await heartbeats(test_env, SERVICES)
    assert set(negotiated.values()) == {HEARTBEAT_S}, negotiated

    proxy.latency_s = LATENCY_S
    async with load(stack.service("gateway").url, test_env, files, parcels) as work:
        phases["load sent"] = time.monotonic()
        phases |= await assert_done_exactly_once(work, test_env, stack)

    same_processes(stack, pids)
    # slow is not dead: no heartbeat timeout, no reconnection
    for service in stack.running:
        assert log_times(service.log_path, "was stuck") == [], service.spec.name
        assert log_times(service.log_path, "Reconnecting") == [], service.spec.name
    print(
        f"\nlatency {LATENCY_S * 1000:.0f} ms each way: {files} files, {parcels} parcels;"
        f" at s: {at(phases, started)}; heartbeats negotiated {sorted(set(negotiated.values()))} s"
    )


async def test_a_blackholed_network_is_noticed_by_heartbeats_and_the_services_recover(
    proxy: FaultyProxy, make_stack, test_env
) -> None:
    files, parcels = FAULT_LOAD
    started = time.monotonic()
    # one message at a time per worker: the load is still running when the fault comes
    stack = start_services(make_stack, proxied_env(proxy, test_env), JAUGE_PREFETCH="1")
    pids = {r.spec.name: r.process.pid for r in stack.running}
    phases = {"ready": time.monotonic()}
    gateway = stack.service("gateway").url

    async with (
        load(gateway, test_env, files, parcels) as work,
        Readiness(stack.running) as readiness,
    ):
        files_before, parcels_before = await under_way(work, test_env)
        silent_since, wall_clock = time.monotonic(), time.time()
        proxy.blackhole()
        phases["blackhole"] = silent_since
        # work sent as the network goes silent: refused once heartbeats notice, neither
        # accepted nor left waiting for an answer that cannot come
        first_import = asyncio.create_task(
            timed(work.importer.client.post("/api/imports", json={"kind": "edi"}))
        )
        first_parcel = asyncio.create_task(
            timed(work.poster.create_colis(work.lot_id, {**FORM, "description": "refusé"}))
        )
        noticed = await readiness.wait(
            lambda name: readiness.down_at(name, silent_since), DETECTION_BOUND_S + 10
        )
        phases["all noticed"] = max(noticed.values())
        first_import_s, response = await first_import
        assert_refused(response, COMMAND_NOT_DELIVERED)
        first_parcel_s, response = await first_parcel
        assert_refused(response, COMMAND_NOT_DELIVERED, COLIS_UNAVAILABLE)
        # once noticed, new work is refused at once
        asked = time.monotonic()
        assert_refused(
            await work.importer.client.post("/api/imports", json={"kind": "edi"}),
            COMMAND_NOT_DELIVERED,
        )
        assert_refused(
            await work.poster.create_colis(work.lot_id, {**FORM, "description": "refusé"}),
            COMMAND_NOT_DELIVERED,
            COLIS_UNAVAILABLE,
        )
        refusal_s = time.monotonic() - asked
        # still silent: every service still says so
        for name in SERVICES:
            assert readiness.samples[name][-1].status != 200, name

        restored = time.monotonic()
        proxy.restore()
        phases["restored"] = restored
        back = await readiness.wait(lambda name: readiness.up_at(name, restored), 60)
        phases["all ready"] = max(back.values())
        phases |= await assert_done_exactly_once(work, test_env, stack)

    same_processes(stack, pids)
    assert files_before < files and parcels_before < parcels, (files_before, parcels_before)
    detection = {name: t - silent_since for name, t in noticed.items()}
    recovery = {name: t - restored for name, t in back.items()}
    # heartbeats noticed it (aiormq's "was stuck"), not a closed socket
    by_heartbeat = {
        r.spec.name: [t - wall_clock for t in log_times(r.log_path, "was stuck")]
        for r in stack.running
    }
    assert all(by_heartbeat.values()), by_heartbeat
    assert max(detection.values()) < DETECTION_BOUND_S, detection
    print(
        f"\nblackhole: {files} files, {parcels} parcels; at s: {at(phases, started)};"
        f" done when it began: {files_before}/{files} files, {parcels_before}/{parcels} parcels;"
        f" /readyz 503 after s: {rounded(detection)}; aiormq 'was stuck' after s:"
        f" {rounded({n: min(v) for n, v in by_heartbeat.items()})}"
        f" ({sum(map(len, by_heartbeat.values()))} connections);"
        f" the import and parcel sent as it began refused (503) after {first_import_s:.1f} s"
        f" and {first_parcel_s:.1f} s, the next two in {refusal_s:.1f} s;"
        f" ready again after restore in s: {rounded(recovery)}"
    )


async def test_connections_cut_mid_load_are_opened_again_and_nothing_is_lost(
    proxy: FaultyProxy, make_stack, test_env
) -> None:
    files, parcels = FAULT_LOAD
    started = time.monotonic()
    stack = start_services(make_stack, proxied_env(proxy, test_env), JAUGE_PREFETCH="1")
    pids = {r.spec.name: r.process.pid for r in stack.running}
    phases = {"ready": time.monotonic()}

    async with (
        load(stack.service("gateway").url, test_env, files, parcels) as work,
        Readiness(stack.running) as readiness,
    ):
        files_before, parcels_before = await under_way(work, test_env)
        connections = proxy.connections
        cut_at, wall_clock = time.monotonic(), time.time()
        assert proxy.cut() == connections >= len(SERVICES)
        phases["cut"] = cut_at
        # a closed socket is seen at once, and aio-pika connects again at once, or when
        # the 5 s pause after its previous attempt (the start, here) is over: /readyz
        # may never see the gap, the proxy does
        while time.monotonic() - cut_at < 60:
            if proxy.connections >= connections:
                break
            await asyncio.sleep(0.05)
        reconnected_s = time.monotonic() - cut_at
        assert proxy.connections >= connections, (proxy.connections, connections)
        back = await readiness.wait(lambda name: readiness.up_at(name, cut_at + reconnected_s), 60)
        phases["all ready"] = max(back.values())
        phases |= await assert_done_exactly_once(work, test_env, stack)

    same_processes(stack, pids)
    assert files_before < files and parcels_before < parcels, (files_before, parcels_before)
    # every service saw its connections closed (and reopened them: the work completed)
    closed = {
        r.spec.name: [t - wall_clock for t in log_times(r.log_path, "closed. Reconnecting")]
        for r in stack.running
    }
    assert all(closed.values()), closed
    print(
        f"\ncut: {files} files, {parcels} parcels; {connections} connections cut;"
        f" at s: {at(phases, started)};"
        f" done when cut: {files_before}/{files} files, {parcels_before}/{parcels} parcels;"
        f" seen closed after s: {rounded({n: min(v) for n, v in closed.items()})};"
        f" all {connections} connections open again after {reconnected_s:.2f} s;"
        f" every /readyz 200 by {max(back.values()) - cut_at:.1f} s"
    )


async def timed(request: Awaitable[httpx.Response]) -> tuple[float, httpx.Response]:
    asked = time.monotonic()
    response = await request
    return time.monotonic() - asked, response


def rounded(seconds: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.1f}" for name, value in seconds.items())
