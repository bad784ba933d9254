"""`make soak`: mixed load for a long time, sampled; nothing may grow without bound.

    .venv/bin/python bench/soak.py [--minutes 30] [--ws-clients 500] [--agents 10]
                                   [--files-per-import 40] [--sample-s 5] [--report PATH]

Starts the four services with deploy/local/stack.py on a vhost, a database prefix and a
data folder of their own (removed afterwards), then for `--minutes`:

- imports: one after another (one at a time, as DESIGN.md wants), each of
  `--files-per-import` EDI files and one empty file, dropped in the inbox and started
  with POST /api/imports; each must end `completed` with exact counts;
- parcels: `--agents` agents each post a parcel every `--parcel-every-s` seconds, half
  with a photo, one in ten for an unknown client (it must end failed_final, the others
  completed); every 25 parcels an agent closes its lot and opens a new one;
- WebSocket churn: `--ws-clients` sockets open at all times, each subscribed to
  `jobs` or to its agent's latest import, held 5 to 30 s while reading, then closed
  and replaced;
- every `--sample-s`: each service's RSS, open files and threads, the store's and the
  broker's memory, the broker's connections and channels for the vhost, every queue's
  depth, and the gateway's open WebSockets.

Then the load stops, the backlog drains, and the verdict is printed:

- the work: every import and every parcel ended as it must, no 5xx, no dead letter;
- growth: after a warm-up (the first fifth, at least a minute), the median of the last half of the
  samples is compared with the first half's; memory may not grow by more than
  max(15 %, 24 MiB), open files by more than 64, broker connections not at all, an
  import's time not past twice its early median (and 10 s more), and the queues must
  drain to zero once the load stops.

Writes every sample and the verdict to reports/bench/soak-<minutes>m.json (or
`--report`). Exits 1 when the verdict fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import resource
import signal
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson
import websockets
from benchkit import COLIS_FORM, REPORTS, BenchEnv, bench_env, photo_of_about, table
from stack import ROOT, Stack, add_user, tail

from jauge_testkit.import_files import make_interchange, sample_invoice

PASSWORD = "soak-password"
ADMIN = "soak-admin"
SERVICES = ("progress-svc", "import-svc", "colis-svc", "gateway")
TOKEN_REFRESH_S = 600  # tokens live 30 minutes; a soak outlives them
MEMORY_GROWTH_RATIO = 0.15
MEMORY_GROWTH_FLOOR_MIB = 24.0
FD_GROWTH_LIMIT = 64
IMPORT_SLOWDOWN_RATIO, IMPORT_SLOWDOWN_FLOOR_S = 2.0, 10.0
QUEUE_BACKLOG_FLOOR = 200  # messages; below this a backlog is a moment's burst
DRAIN_TIMEOUT_S = 180.0
WARMUP_FRACTION, WARMUP_MIN_S = 0.2, 60.0
TERMINAL = {"completed", "failed_final", "cancelled"}  # a parcel task's own states
ENDED_PROGRESS = {"completed", "failed", "cancelled"}  # a progress document's


def step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- what one process uses, from /proc (psutil is not a dependency) -------------------


def proc_usage(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {
        "rss_mib": int(fields["VmRSS"].split()[0]) / 1024,
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def ferretdb_pid() -> int | None:
    """The shared FerretDB of deploy/local/infra.sh, when that is the store in use."""
    pid_file = ROOT / "var" / "infra" / "ferretdb" / "ferretdb.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text().strip())
        if Path(f"/proc/{pid}").exists():
            return pid
    return None


# --- the load ---------------------------------------------------------------------------


@dataclass
class Tally:
    """What the load did and saw; the verdict reads it."""

    imports: list[dict[str, Any]] = field(default_factory=list)
    parcels: dict[str, tuple[str, str]] = field(default_factory=dict)  # task -> (agent, want)
    responses: Counter[int] = field(default_factory=Counter)
    ws_sessions: int = 0
    ws_frames: int = 0
    ws_failures: Counter[str] = field(default_factory=Counter)
    latest_job: str | None = None
    unexpected: list[str] = field(default_factory=list)  # the first few, to read

    def answered(self, response: httpx.Response) -> None:
        self.responses[response.status_code] += 1
        if response.status_code >= 400 and len(self.unexpected) < 20:
            request = response.request
            self.unexpected.append(
                f"{request.method} {request.url.path} {response.status_code} {response.text[:200]}"
            )


class Tokens:
    """One login per user, renewed before it expires."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.cache: dict[str, tuple[str, float]] = {}

    async def get(self, user: str) -> str:
        token, at = self.cache.get(user, ("", 0.0))
        if time.monotonic() - at > TOKEN_REFRESH_S:
            response = await self.http.post(
                "/api/auth/token", data={"username": user, "password": PASSWORD}
            )
            response.raise_for_status()
            token = response.json()["access_token"]
            self.cache[user] = (token, time.monotonic())
        return token

    async def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.get(user)}"}


def write_import_files(inbox: Path, round_no: int, count: int) -> None:
    """`count` good interchanges and one empty file, the import's one expected error."""
    inbox.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        spec = sample_invoice(i % 3 + 1, f"S{round_no}-{i:04d}", n_lines=2)
        data = make_interchange([spec], ref=f"S{round_no}x{i}")
        (inbox / f"soak-{round_no:04d}-{i:04d}.edi").write_bytes(data)
    (inbox / f"soak-{round_no:04d}-vide.edi").write_bytes(b"")


async def imports(
    http: httpx.AsyncClient,
    tokens: Tokens,
    inbox: Path,
    args: argparse.Namespace,
    tally: Tally,
    stop: asyncio.Event,
) -> None:
    for round_no in itertools.count():
        if stop.is_set():
            return
        await asyncio.to_thread(write_import_files, inbox, round_no, args.files_per_import)
        response = await http.post(
            "/api/imports", json={"kind": "edi"}, headers=await tokens.headers(ADMIN)
        )
        tally.answered(response)
        if response.status_code != 202:
            tally.imports.append({"round": round_no, "refused": response.text[:200]})
            await asyncio.sleep(2)
            continue
        job_id = response.json()["job_id"]
        tally.latest_job = job_id
        started = time.monotonic()
        job: dict[str, Any] = {}
        while time.monotonic() - started < args.import_timeout_s:
            await asyncio.sleep(1)
            reply = await http.get(f"/api/jobs/{job_id}", headers=await tokens.headers(ADMIN))
            if reply.status_code != 404:  # 404: accepted, not yet in the read model
                tally.answered(reply)
            if reply.status_code == 200:
                job = reply.json()
                if job.get("status") in {"completed", "failed", "cancelled"}:
                    break
        tally.imports.append(
            {
                "round": round_no,
                "job_id": job_id,
                "seconds": round(time.monotonic() - started, 1),
                "want": (args.files_per_import + 1, args.files_per_import + 1, 1),
                "got": (job.get("total"), job.get("processed"), job.get("failed")),
                "status": job.get("status"),
            }
        )


async def agent(
    http: httpx.AsyncClient,
    tokens: Tokens,
    name: str,
    photo: bytes,
    args: argparse.Namespace,
    tally: Tally,
    stop: asyncio.Event,
) -> None:
    lot_id = None
    in_lot: list[str] = []
    await asyncio.sleep(random.uniform(0, args.parcel_every_s))  # agents are not in step
    for n in itertools.count():
        if stop.is_set():
            return
        headers = await tokens.headers(name)
        if n % 25 == 0:
            if lot_id is not None:
                # as an agent would: a parcel still on its way into a lot would fail
                await wait_ended(http, tokens, name, in_lot, tally)
                in_lot.clear()
                closed = await http.post(f"/api/lots/{lot_id}/close", headers=headers)
                tally.answered(closed)
            lot = await http.post("/api/lots", json={"type_lot": "express"}, headers=headers)
            tally.answered(lot)
            lot.raise_for_status()
            lot_id = lot.json()["id"]
        unknown_client = n % 10 == 9
        form = {**COLIS_FORM, "description": f"soak {name} {n}"}
        if unknown_client:
            form["client_id"] = "cli-inconnu"
        files = {"image": ("p.jpg", photo, "image/jpeg")} if n % 2 == 0 else None
        response = await http.post(
            f"/api/lots/{lot_id}/colis", data=form, files=files, headers=headers
        )
        tally.answered(response)
        if response.status_code == 202:
            want = "failed_final" if unknown_client else "completed"
            tally.parcels[response.json()["task_id"]] = (name, want)
            in_lot.append(response.json()["task_id"])
        await asyncio.sleep(args.parcel_every_s)


async def wait_ended(
    http: httpx.AsyncClient, tokens: Tokens, owner: str, task_ids: list[str], tally: Tally
) -> None:
    pending = list(task_ids)
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        reply = await http.get(f"/api/tasks/{pending[0]}", headers=await tokens.headers(owner))
        if reply.status_code == 200 and reply.json().get("status") in ENDED_PROGRESS:
            pending.pop(0)
        elif reply.status_code not in {200, 404}:  # 404: not yet in the read model
            tally.answered(reply)
            return
        else:
            await asyncio.sleep(1)


async def ws_slot(
    ws_url: str, tokens: Tokens, users: list[str], tally: Tally, stop: asyncio.Event
) -> None:
    """One socket open at a time: held a while, closed, replaced."""
    await asyncio.sleep(random.uniform(0, 5))  # no 500 handshakes in the same instant
    while not stop.is_set():
        user, topic = random.choice(users), "jobs"
        if random.random() < 0.3 and tally.latest_job:
            user, topic = ADMIN, f"job:{tally.latest_job}"  # imports are the admin's
        try:
            token = await tokens.get(user)
            async with websockets.connect(
                f"{ws_url}/ws",
                open_timeout=30,
                close_timeout=5,
                max_size=None,
                additional_headers={"Authorization": f"Bearer {token}"},
            ) as ws:
                tally.ws_sessions += 1
                await ws.send(orjson.dumps({"op": "subscribe", "topic": topic}).decode())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(random.uniform(5, 30)):
                        while not stop.is_set():
                            await ws.recv()
                            tally.ws_frames += 1
        except (OSError, websockets.WebSocketException, httpx.HTTPError) as e:
            tally.ws_failures[type(e).__name__] += 1
            await asyncio.sleep(1)
        await asyncio.sleep(random.uniform(0, 2))


# --- sampling ---------------------------------------------------------------------------


@dataclass
class Probe:
    stack: Stack
    management: httpx.AsyncClient
    vhost: str
    gateway: httpx.AsyncClient
    store_pid: int | None
    phase: str = "load"
    exited: dict[str, str] = field(default_factory=dict)

    async def sample(self, t0: float) -> dict[str, Any]:
        sample: dict[str, Any] = {
            "t": round(time.monotonic() - t0, 1),
            "phase": self.phase,
            "processes": {},
        }
        for running in self.stack.running:
            code = running.process.poll()
            if code is not None:
                # a service that died mid-soak is the verdict's first line, with its log
                if running.spec.name not in self.exited:
                    self.exited[running.spec.name] = (
                        f"{running.spec.name} exited with code {code} at "
                        f"{sample['t']:.0f} s; its log ends:\n{tail(running.log_path)}"
                    )
                    step(self.exited[running.spec.name])
                continue
            with contextlib.suppress(OSError, KeyError):
                sample["processes"][running.spec.name] = proc_usage(running.process.pid)
        if self.store_pid is not None:
            with contextlib.suppress(OSError, KeyError):
                sample["processes"]["ferretdb"] = proc_usage(self.store_pid)
        vhost = quote(self.vhost, safe="")
        queues = (await self.management.get(f"/api/queues/{vhost}")).json()
        sample["queues"] = {q["name"]: q.get("messages", 0) for q in queues}
        connections = (await self.management.get(f"/api/vhosts/{vhost}/connections")).json()
        sample["broker_connections"] = len(connections)
        channels = (await self.management.get(f"/api/vhosts/{vhost}/channels")).json()
        sample["broker_channels"] = len(channels)
        node = (await self.management.get("/api/nodes")).json()[0]
        sample["broker_mem_mib"] = node.get("mem_used", 0) / 2**20
        sample["ws_open"] = await self.open_websockets()
        return sample

    async def open_websockets(self) -> float | None:
        with contextlib.suppress(httpx.HTTPError):
            for line in (await self.gateway.get("/metrics")).text.splitlines():
                if line.startswith("jauge_ws_connections "):
                    return float(line.split()[1])
        return None


async def sample_every(
    probe: Probe, every_s: float, samples: list[dict[str, Any]], t0: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            samples.append(await probe.sample(t0))
        except (httpx.HTTPError, ValueError) as e:
            step(f"sample skipped: {e!r}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


# --- the verdict ------------------------------------------------------------------------


def halves(samples: list[dict[str, Any]]) -> tuple[list, list]:
    """The load's samples after the warm-up, cut in two.

    The warm-up is the first fifth, and at least a minute: 500 sockets connecting and
    the allocators' first arenas make memory climb before it settles.
    """
    warmup_s = max(WARMUP_MIN_S, WARMUP_FRACTION * samples[-1]["t"]) if samples else 0
    steady = [s for s in samples if s["t"] >= warmup_s]
    middle = len(steady) // 2
    return steady[:middle], steady[middle:]


def growth(samples: list[dict[str, Any]], value: Any) -> tuple[float, float] | None:
    """(median of the first half, median of the last) of `value(sample)`, after warm-up."""
    first, last = halves(samples)
    a = [v for s in first if (v := value(s)) is not None]
    b = [v for s in last if (v := value(s)) is not None]
    if not a or not b:
        return None
    return statistics.median(a), statistics.median(b)


def usage(name: str, key: str) -> Any:
    return lambda s: s["processes"].get(name, {}).get(key)


def verdict(
    samples: list[dict[str, Any]], tally: Tally, finals: dict[str, str], drained: dict[str, Any]
) -> tuple[list[str], list[tuple[str, str]]]:
    """(what failed, the table's rows)."""
    failures: list[str] = []
    rows: list[tuple[str, str]] = []
    idle = samples[-1]  # taken once the backlog drained
    samples = [s for s in samples if s["phase"] == "load"]
    names = sorted({n for s in samples for n in s["processes"]})
    for name in names:
        for key, limit in (("rss_mib", None), ("fds", FD_GROWTH_LIMIT), ("threads", 8)):
            seen = growth(samples, usage(name, key))
            if seen is None:
                continue
            before, after = seen
            allowed = (
                max(before * MEMORY_GROWTH_RATIO, MEMORY_GROWTH_FLOOR_MIB)
                if limit is None
                else limit
            )
            peak = max(v for s in samples if (v := usage(name, key)(s)) is not None)
            ok = after - before <= allowed
            rows.append(
                (
                    f"{name} {key}",
                    f"{before:.1f} -> {after:.1f} (peak {peak:.1f}, may grow {allowed:.0f})"
                    + ("" if ok else "  GROWS"),
                )
            )
            if not ok:
                failures.append(f"{name} {key} grew from {before:.1f} to {after:.1f}")
    seen = growth(samples, lambda s: s["broker_mem_mib"])
    if seen:
        rows.append(("rabbitmq memory MiB", f"{seen[0]:.0f} -> {seen[1]:.0f}"))
    # a service may open a connection on first use: look after the warm-up
    first, last = halves(samples)
    connections = [s["broker_connections"] for s in first + last]
    channels = [s["broker_channels"] for s in first + last]
    rows.append(("broker connections", f"min {min(connections)}, max {max(connections)}"))
    rows.append(("broker channels", f"min {min(channels)}, max {max(channels)}"))
    if min(connections) != max(connections):
        failures.append(f"broker connections varied: {min(connections)}..{max(connections)}")
    depth = [sum(s["queues"].values()) for s in samples]
    backlog = (
        (
            statistics.median(sum(s["queues"].values()) for s in first),
            statistics.median(sum(s["queues"].values()) for s in last),
        )
        if first and last
        else (0, 0)
    )
    if backlog[1] > max(2 * backlog[0], QUEUE_BACKLOG_FLOOR):
        failures.append(f"the backlog grew under load: median {backlog[0]} -> {backlog[1]}")
    rows.append(
        (
            "messages queued",
            f"peak {max(depth)}, median {backlog[0]:.0f} -> {backlog[1]:.0f}; "
            f"{drained['seconds']:.0f} s to drain after the load",
        )
    )
    if drained["left"]:
        failures.append(f"queues not drained: {drained['left']}")
    ws_open = [s["ws_open"] for s in samples if s["ws_open"] is not None]
    if ws_open:
        rows.append(
            (
                "open WebSockets",
                f"median {statistics.median(ws_open):.0f} under load, "
                f"{idle['ws_open']:.0f} once the clients left",
            )
        )
    if idle["ws_open"]:
        failures.append(f"{idle['ws_open']:.0f} WebSockets still open once every client left")
    gateway_after = idle["processes"].get("gateway", {})
    rows.append(
        (
            "gateway once idle",
            f"{gateway_after.get('fds')} files open, {gateway_after.get('rss_mib', 0):.0f} MiB",
        )
    )
    rows.append(
        (
            "WebSocket sessions",
            f"{tally.ws_sessions} opened, {tally.ws_frames} frames, "
            f"failures {dict(tally.ws_failures) or 'none'}",
        )
    )
    # an import's time may not keep growing with the history (the store's scans do)
    timed = [i["seconds"] for i in tally.imports if "seconds" in i]
    steady = timed[int(len(timed) * WARMUP_FRACTION) :]
    if len(steady) >= 4:
        early = statistics.median(steady[: len(steady) // 2])
        late = statistics.median(steady[len(steady) // 2 :])
        grows = late > max(IMPORT_SLOWDOWN_RATIO * early, early + IMPORT_SLOWDOWN_FLOOR_S)
        rows.append(
            (
                "import duration",
                f"median {early:.1f} s -> {late:.1f} s (max {max(timed):.1f} s)"
                + ("  GROWS" if grows else ""),
            )
        )
        if grows:
            failures.append(f"imports slow down as history grows: {early:.1f} s -> {late:.1f} s")
    wrong_imports = [
        i
        for i in tally.imports
        if i.get("status") != "completed" or tuple(i["got"]) != tuple(i["want"])
    ]
    rows.append(
        (
            "imports",
            f"{len(tally.imports)} ended, {len(wrong_imports)} wrong"
            f" (each {tally.imports[0]['want'][0] if tally.imports else 0} files)",
        )
    )
    if not tally.imports:
        failures.append("no import ran")
    failures += [f"import ended wrong: {i}" for i in wrong_imports[:5]]
    outcome = Counter(finals.values())
    wrong_parcels = {t: s for t, s in finals.items() if s != tally.parcels[t][1]}
    rows.append(("parcels", f"{len(tally.parcels)} accepted, ended {dict(outcome)}"))
    if not tally.parcels:
        failures.append("no parcel was accepted")
    failures += [f"parcel {t} ended {s}" for t, s in list(wrong_parcels.items())[:5]]
    rows.append(("HTTP answers", str(dict(sorted(tally.responses.items())))))
    if server_errors := {c: n for c, n in tally.responses.items() if c >= 500}:
        failures.append(f"server errors: {server_errors}")
    dead = {q: n for q, n in drained["queues"].items() if q.endswith(".dlq") and n}
    rows.append(("dead letters", str(dead or 0)))
    if dead:
        failures.append(f"dead letters: {dead}")
    return failures, rows


# --- the run ----------------------------------------------------------------------------


async def final_states(
    http: httpx.AsyncClient,
    tokens: Tokens,
    tally: Tally,
    states: dict[str, str],
    deadline: float,
) -> None:
    """Ask again only for the tasks not yet ended, until the deadline."""
    for task_id, (owner, want) in tally.parcels.items():
        if states.get(task_id) in TERMINAL:
            continue
        if time.monotonic() > deadline:
            return
        reply = await http.get(f"/api/tasks/{task_id}", headers=await tokens.headers(owner))
        doc = reply.json() if reply.status_code == 200 else {}
        # the progress status says "failed"; the task's own state says whether for good
        states[task_id] = doc.get("step_status") or doc.get("status") or f"HTTP {reply.status_code}"
        if states[task_id] in TERMINAL and states[task_id] != want:
            tally.unexpected.append(f"task {task_id}: {orjson.dumps(doc).decode()[:400]}")


async def drain(
    probe: Probe, http: httpx.AsyncClient, tokens: Tokens, tally: Tally
) -> tuple[dict[str, str], dict[str, Any]]:
    """Wait for every parcel to end and every queue to empty."""
    started = time.monotonic()
    finals: dict[str, str] = {}
    queues: dict[str, int] = {}
    while time.monotonic() - started < DRAIN_TIMEOUT_S:
        await final_states(http, tokens, tally, finals, started + DRAIN_TIMEOUT_S)
        sample = await probe.sample(started)
        queues = sample["queues"]
        busy = {q: n for q, n in queues.items() if n and not q.endswith(".dlq")}
        ended = all(s in TERMINAL for s in finals.values())
        if ended and not busy:
            return finals, {"seconds": time.monotonic() - started, "left": {}, "queues": queues}
        await asyncio.sleep(2)
    busy = {q: n for q, n in queues.items() if n and not q.endswith(".dlq")}
    return finals, {"seconds": time.monotonic() - started, "left": busy, "queues": queues}


async def soak(args: argparse.Namespace, bench: BenchEnv, stack: Stack) -> dict[str, Any]:
    gateway = stack.service("gateway").url
    agents = [f"soak-agent-{i:02d}" for i in range(args.agents)]
    photo = photo_of_about(args.photo_kb)
    tally = Tally()
    samples: list[dict[str, Any]] = []
    amqp = urlsplit(bench.amqp_url)
    limits = httpx.Limits(max_connections=args.agents + 8)
    async with (
        httpx.AsyncClient(base_url=gateway, timeout=60, limits=limits) as http,
        httpx.AsyncClient(
            base_url=bench.management_url,
            auth=(amqp.username or "guest", amqp.password or "guest"),
            timeout=30,
        ) as management,
        httpx.AsyncClient(base_url=gateway, timeout=10) as metrics,
    ):
        tokens = Tokens(http)
        probe = Probe(stack, management, amqp.path.lstrip("/"), metrics, ferretdb_pid())
        t0 = time.monotonic()
        stop_load, stop_sampling = asyncio.Event(), asyncio.Event()
        sampler = asyncio.create_task(
            sample_every(probe, args.sample_s, samples, t0, stop_sampling)
        )
        ws_url = gateway.replace("http://", "ws://")
        load = [
            asyncio.create_task(
                imports(http, tokens, bench.data_dir / "inbox" / "edi", args, tally, stop_load)
            ),
            *(
                asyncio.create_task(agent(http, tokens, a, photo, args, tally, stop_load))
                for a in agents
            ),
            *(
                asyncio.create_task(ws_slot(ws_url, tokens, [ADMIN, *agents], tally, stop_load))
                for _ in range(args.ws_clients)
            ),
        ]
        step(
            f"load: {args.agents} agents, imports of {args.files_per_import} files, "
            f"{args.ws_clients} WebSockets, for {args.minutes} min"
        )
        deadline = t0 + args.minutes * 60
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(60, left))
            if samples:
                last = samples[-1]
                step(
                    f"{last['t']:.0f} s: {len(tally.parcels)} parcels, "
                    f"{len(tally.imports)} imports, {tally.ws_sessions} WebSocket sessions, "
                    f"queued {sum(last['queues'].values())}, "
                    + ", ".join(f"{n} {p['rss_mib']:.0f} MiB" for n, p in last["processes"].items())
                )
        stop_load.set()
        probe.phase = "drain"
        step("load stopped; waiting for the work under way to end")
        await asyncio.wait(load, timeout=args.import_timeout_s)
        for task in load:
            task.cancel()
        results = await asyncio.gather(*load, return_exceptions=True)
        crashed = [
            repr(r)
            for r in results
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
        ]
        finals, drained = await drain(probe, http, tokens, tally)
        stop_sampling.set()
        await sampler
        samples.append(await probe.sample(t0))
    failures, rows = verdict(samples, tally, finals, drained)
    failures = list(probe.exited.values()) + failures
    failures += [f"a load task crashed: {c}" for c in crashed]
    return {
        "minutes": args.minutes,
        "ws_clients": args.ws_clients,
        "agents": args.agents,
        "files_per_import": args.files_per_import,
        "failures": failures,
        "table": rows,
        "imports": tally.imports,
        "unexpected": tally.unexpected,
        "samples": samples,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--ws-clients", type=int, default=500)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--parcel-every-s", type=float, default=3.0)
    parser.add_argument("--photo-kb", type=int, default=120)
    parser.add_argument("--files-per-import", type=int, default=40)
    parser.add_argument("--import-timeout-s", type=float, default=300)
    parser.add_argument("--sample-s", type=float, default=5)
    parser.add_argument("--report", type=Path, default=None)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    # `kill` stops it as Ctrl-C does: services stopped, vhost and databases removed
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # the sockets of this process and of the gateway, which inherits the limit
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with bench_env() as bench:
        stack = bench.stack(JAUGE_RPC_TIMEOUT_S="30")
        try:
            started = [stack.start(name) for name in SERVICES]
            stack.wait_ready(started, timeout_s=180)
            add_user(bench.env(), ADMIN, "admin", PASSWORD)
            for i in range(args.agents):
                add_user(bench.env(), f"soak-agent-{i:02d}", "agent", PASSWORD)
            result = asyncio.run(soak(args, bench, stack))
        finally:
            stack.stop_all()
    path = args.report or REPORTS / f"soak-{args.minutes:g}m.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print(f"Soak of {args.minutes:g} min")
    print(table(result["table"]))
    print(f"report: {path}")
    if result["unexpected"]:
        print("unexpected answers:\n  " + "\n  ".join(result["unexpected"]))
    if result["failures"]:
        print("FAILED:\n  " + "\n  ".join(result["failures"]))
        return 1
    print("nothing grew without bound; every piece of work ended as it must")
    return 0


if __name__ == "__main__":
    sys.exit(main())
