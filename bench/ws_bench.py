"""`make bench-ws`: thousands of WebSocket clients on one gateway, fed by the real pipeline.

    .venv/bin/python bench/ws_bench.py [--clients 5000] [--jobs 100] [--rate 200]
                                       [--duration 30] [--stalled-fraction 0.05]

Starts progress-svc and ONE gateway with deploy/local/stack.py on a vhost and a database
prefix of its own (removed afterwards), then:

1. opens `--clients` sockets in batches, each logged in as the agent owning its job and
   subscribed to `job:<id>` (`--jobs` jobs); a `--stalled-fraction` of them, logged in
   as an admin and subscribed to `jobs`, never read (see `open_stalled`);
2. publishes the real import.started, then file.imported at `--rate` events/s for
   `--duration` s, round robin over the jobs, so progress-svc writes the documents and
   the gateway pushes frames;
3. measures publish → frame latency on every frame the readers receive (the frame's
   `processed` count says which publish it reflects), and publish → progress.updated
   as seen by a queue of our own, to tell the gateway's share from progress-svc's;
4. samples the gateway's RSS, open files and CPU, scrapes its /metrics, and looks at
   what became of the stalled sockets: closed by the hub (1013 "client too slow"),
   reset by the kernel (the gateway's TCP_USER_TIMEOUT), or still held by the server.
Prints a table and writes reports/bench/ws-<clients>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import resource
import signal
import socket
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import httpx
import orjson
import websockets
from benchkit import BenchEnv, bench_env, file_event, percentiles, started, table, write_report
from prometheus_client.parser import text_string_to_metric_families
from stack import Stack, add_user
from websockets.asyncio.client import ClientConnection

from jauge_shared.contracts import Event
from jauge_shared.topology import EVENTS_EXCHANGE, RK

PASSWORD = "bench-password"
ADMIN = "ws-admin"
WINDOW = 500  # publishes awaiting their confirm
FD_MARGIN = 512  # broker, store, logs and the odd probe, besides the sockets
STALLED_RCVBUF = 4096  # bytes; the kernel's floor is about this, doubled


def step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- the process: file descriptors, memory, CPU -------------------------------------


def raise_fd_limit(needed: int) -> dict[str, int]:
    """Soft limit up to the hard one; the services started later inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        step(
            f"WARNING: open-file hard limit is {hard} (`ulimit -Hn`), {needed} are needed; "
            "sockets beyond it fail with EMFILE. Raise it (limits.conf, systemd LimitNOFILE)."
        )
    return {"soft_before": soft, "hard": hard, "soft": target, "needed": needed}


def rss_mib(pid: int) -> float:
    """VmRSS from /proc (psutil is not a dependency of Jauge)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of every core: what else runs on the machine shows here."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class CpuWindow:
    """CPU used between `start()` and `stop()`, in cores, per watched process."""

    pids: dict[str, int]
    _t0: float = 0.0
    _cpu0: dict[str, float] = field(default_factory=dict)
    _machine0: tuple[float, float] = (0.0, 0.0)

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._cpu0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine0 = machine_busy()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._t0
        used = {
            name: round((cpu_seconds(pid) - self._cpu0[name]) / elapsed, 2)
            for name, pid in self.pids.items()
        }
        busy, total = machine_busy()
        cores = os.cpu_count() or 1
        used["machine (all processes)"] = round(
            cores * (busy - self._machine0[0]) / max(1, total - self._machine0[1]), 2
        )
        return used


def tcp_queues(port: int) -> dict[str, list[int]]:
    """Send-Q of the server's established sockets, Recv-Q of the clients' (/proc/net/tcp).

    A reader's queues are empty; a stalled client's are full. Shows whether the server
    still holds a socket the hub has let go, and how much it keeps for it.
    """
    server, client = [], []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        local, remote, state = cols[1], cols[2], cols[3]
        if state != "01":  # ESTABLISHED
            continue
        tx, rx = (int(x, 16) for x in cols[4].split(":"))
        if int(local.split(":")[1], 16) == port:
            server.append(tx)
        elif int(remote.split(":")[1], 16) == port:
            client.append(rx)
    return {"server_send_q": server, "client_recv_q": client}


# --- the gateway's /metrics -----------------------------------------------------------


async def scrape(http: httpx.AsyncClient) -> dict[str, float]:
    """The hub's metrics as {name{labels}: value}; histograms by bucket."""
    text = (await http.get("/metrics")).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("jauge_ws"):
            continue
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def histogram_quantile(metrics: dict[str, float], name: str, q: float) -> float:
    """Prometheus's histogram_quantile over cumulative buckets (upper bound of the bucket)."""
    buckets = sorted(
        (float(key.split("le=")[1].rstrip("}")), value)
        for key, value in metrics.items()
        if key.startswith(name + "_bucket")
    )
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    rank = q * buckets[-1][1]
    return next(le for le, count in buckets if count >= rank)


# --- users and jobs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    jobs: list[str]
    owner: dict[str, str]  # job -> agent
    per_job: int  # file.imported each job receives


def make_plan(args: argparse.Namespace) -> Plan:
    jobs = [f"ws-{j:04d}" for j in range(args.jobs)]
    owner = {job: f"ws-agent-{j % args.agents}" for j, job in enumerate(jobs)}
    return Plan(jobs, owner, math.ceil(args.rate * args.duration / args.jobs))


async def tokens_for(env: BenchEnv, gateway: str, plan: Plan) -> dict[str, str]:
    """One login per user; thousands of sockets share a token as a browser's tabs do."""
    users = {**{agent: "agent" for agent in set(plan.owner.values())}, ADMIN: "admin"}
    for name, role in users.items():
        await asyncio.to_thread(add_user, env.env(), name, role, PASSWORD)
    tokens = {}
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        for name in users:
            response = await http.post(
                "/api/auth/token", data={"username": name, "password": PASSWORD}
            )
            response.raise_for_status()
            tokens[name] = response.json()["access_token"]
    return tokens


def amqp_message(event: Event) -> aio_pika.Message:
    """The envelope's properties (DESIGN.md, Topology), as the services publish them."""
    return aio_pika.Message(
        event.model_dump_json().encode(),
        message_id=str(event.event_id),
        type=event.type,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


# --- what we measure ------------------------------------------------------------------


@dataclass
class Measures:
    sent_at: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    final: dict[str, int] = field(default_factory=dict)  # set once publishing is over
    frame_latency: list[float] = field(default_factory=list)
    updated_latency: list[float] = field(default_factory=list)  # publish → progress.updated
    frames: int = 0
    unmatched_frames: int = 0  # a `processed` we did not publish (snapshot, started)
    first_publish: float = 0.0
    last_frame: float = 0.0
    caught_up: int = 0
    all_caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    readers: int = 0

    def latency_of(self, job: str, processed: int, now: float) -> float | None:
        sent = self.sent_at.get(job, {}).get(processed)
        return None if sent is None else now - sent


async def watch_updates(
    channel: aio_pika.abc.AbstractChannel, measures: Measures, jobs: int
) -> asyncio.Event:
    """Our own queue on progress.updated: set once `jobs` documents exist; and latency.

    It sees what a gateway sees, when it sees it; the frame latency minus this one is
    the gateway's share (plus the broker's second hop).
    """
    seen: set[str] = set()
    all_exist = asyncio.Event()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(EVENTS_EXCHANGE.name, routing_key=RK.PROGRESS_UPDATED)

    async def on_update(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        now = time.perf_counter()
        event = orjson.loads(message.body)
        seen.add(event["job_id"])
        if len(seen) >= jobs:
            all_exist.set()
        latency = measures.latency_of(event["job_id"], event["job"]["processed"], now)
        if latency is not None:
            measures.updated_latency.append(latency)

    await queue.consume(on_update, no_ack=True)
    return all_exist


async def loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    """How late our own event loop wakes: every latency we measure includes it."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(0.05)
        samples.append(time.perf_counter() - t0 - 0.05)


# --- the clients ----------------------------------------------------------------------


@dataclass
class Reader:
    ws: ClientConnection
    job: str
    last_processed: int = 0
    done: bool = False


@dataclass
class Stalled:
    ws: ClientConnection


async def open_reader(url: str, token: str, job: str, open_timeout: float) -> Reader:
    """Connected, subscribed and holding its snapshot: ready to measure."""
    ws = await websockets.connect(
        f"{url}/ws",
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=open_timeout,
        ping_interval=None,  # the server pings; answering them is enough
        close_timeout=2,
    )
    await ws.send(orjson.dumps({"op": "subscribe", "topic": f"job:{job}"}).decode())
    snapshot = orjson.loads(await asyncio.wait_for(ws.recv(), open_timeout))
    return Reader(ws, job, (snapshot.get("job") or {}).get("processed", 0))


async def open_stalled(url: str, token: str, open_timeout: float, compress: bool) -> Stalled:
    """A client that never reads, with a receive window as small as the kernel allows.

    It subscribes to `jobs` (every job, as an admin's dashboard does) rather than one
    job, and by default without permessage-deflate: one job's two updates a second, or
    every job's deflated against the previous frame (a few dozen bytes each), would
    take minutes to fill the buffers, and uvicorn's keepalive (ping every 20 s, 20 s to
    answer) would close the socket before the hub's stall detection could be seen.
    `max_queue=1` makes websockets stop reading the socket after one frame, so the
    kernel's window closes and the server's writes block.
    """
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)  # before SYN
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
    ws = await websockets.connect(
        f"{url}/ws",
        additional_headers={"Authorization": f"Bearer {token}"},
        sock=sock,
        open_timeout=open_timeout,
        ping_interval=None,
        max_queue=1,
        close_timeout=2,
        compression="deflate" if compress else None,
    )
    await ws.send(orjson.dumps({"op": "subscribe", "topic": "jobs"}).decode())
    return Stalled(ws)


async def read_frames(reader: Reader, measures: Measures) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for raw in reader.ws:
            now = time.perf_counter()
            job = orjson.loads(raw).get("job") or {}
            processed = job.get("processed", 0)
            measures.frames += 1
            measures.last_frame = now
            latency = measures.latency_of(reader.job, processed, now)
            if latency is None:
                measures.unmatched_frames += 1
            else:
                measures.frame_latency.append(latency)
            reader.last_processed = max(reader.last_processed, processed)
            final = measures.final.get(reader.job)
            if not reader.done and final is not None and reader.last_processed >= final:
                reader.done = True
                measures.caught_up += 1
                if measures.caught_up >= measures.readers:
                    measures.all_caught_up.set()


@dataclass
class Connected:
    readers: list[Reader]
    stalled: list[Stalled]
    failures: Counter[str]
    seconds: float
    open_ms: list[float]


async def connect_all(
    args: argparse.Namespace, url: str, plan: Plan, tokens: dict[str, str]
) -> Connected:
    """Sockets in batches of `--batch`: all at once would overrun the accept backlog."""
    stalled_count = round(args.clients * args.stalled_fraction)
    # spread over the run of ids, not bunched at the end of the connecting
    stalled_ids = {k * args.clients // stalled_count for k in range(stalled_count)}
    readers: list[Reader] = []
    stalled: list[Stalled] = []
    failures: Counter[str] = Counter()
    open_ms: list[float] = []

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        try:
            if i in stalled_ids:
                stalled.append(
                    await open_stalled(
                        url, tokens[ADMIN], args.open_timeout, args.stalled_compression
                    )
                )
            else:
                job = plan.jobs[i % len(plan.jobs)]
                readers.append(
                    await open_reader(url, tokens[plan.owner[job]], job, args.open_timeout)
                )
            open_ms.append((time.perf_counter() - t0) * 1000)
        except Exception as exc:  # counted and reported: the point is to find the limit
            failures[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1

    t0 = time.perf_counter()
    for start in range(0, args.clients, args.batch):
        await asyncio.gather(*(one(i) for i in range(start, min(args.clients, start + args.batch))))
        if start and start % (args.batch * 8) == 0:
            step(f"  {len(readers) + len(stalled)} open, {sum(failures.values())} failed")
    return Connected(readers, stalled, failures, time.perf_counter() - t0, open_ms)


# --- publishing -----------------------------------------------------------------------


async def publish(exchange: aio_pika.abc.AbstractExchange, events: list[Event]) -> None:
    await asyncio.gather(*(exchange.publish(amqp_message(e), routing_key=e.type) for e in events))


async def publish_steadily(
    exchange: aio_pika.abc.AbstractExchange, plan: Plan, rate: float, measures: Measures
) -> dict[str, float]:
    """file.imported at `rate`/s, round robin; when each left is kept to match frames."""
    count = plan.per_job * len(plan.jobs)
    processed: dict[str, int] = defaultdict(int)
    pending: set[asyncio.Task[Any]] = set()
    behind = 0.0  # how far the publisher fell behind its schedule (our CPU)
    t0 = time.perf_counter()
    for i in range(count):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        behind = max(behind, -delay)
        job = plan.jobs[i % len(plan.jobs)]
        processed[job] += 1
        measures.sent_at[job][processed[job]] = time.perf_counter()
        event = file_event(job, processed[job], producer="ws-bench")
        task = asyncio.create_task(exchange.publish(amqp_message(event), routing_key=event.type))
        pending.add(task)
        task.add_done_callback(pending.discard)
        if len(pending) >= WINDOW:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*pending)
    seconds = time.perf_counter() - t0
    measures.final.update(processed)
    return {
        "events": count,
        "seconds": round(seconds, 2),
        "achieved_per_s": round(count / seconds, 1),
        "max_behind_schedule_ms": round(behind * 1000, 1),
    }


# --- stalled clients ------------------------------------------------------------------


async def fate_of(client: Stalled, quiet_s: float) -> tuple[str, int]:
    """Read what the server left for a stalled client: its close code, or still open.

    Returns (outcome, frames read before it). Reading unblocks the server's writes, so
    this runs only after the server-side queues were recorded.
    """
    frames = 0
    try:
        while True:
            await asyncio.wait_for(client.ws.recv(), quiet_s)
            frames += 1
    except websockets.ConnectionClosed as closed:
        if closed.rcvd is None:  # the kernel reset it (or the close frame was lost with it)
            return "gone without a close frame", frames
        return f"closed {closed.rcvd.code} {closed.rcvd.reason}".strip(), frames
    except TimeoutError:
        return "still open", frames


def disconnect_times(timeline: list[dict[str, float]]) -> dict[str, float | None]:
    """When sockets left the hub, in seconds after the first publish.

    Slow disconnects are the hub's own (1013); a drop of the connections gauge counts
    every way out, the kernel's reset of a peer that stopped reading included.
    """
    slow = [
        b["t"]
        for a, b in itertools.pairwise(timeline)
        if b["slow_disconnects"] > a["slow_disconnects"]
    ]
    gone = [b["t"] for a, b in itertools.pairwise(timeline) if b["connections"] < a["connections"]]
    return {
        "slow_first_s": slow[0] if slow else None,
        "slow_last_s": slow[-1] if slow else None,
        "any_first_s": gone[0] if gone else None,
        "any_last_s": gone[-1] if gone else None,
    }


async def sample_gateway(
    http: httpx.AsyncClient,
    pid: int,
    measures: Measures,
    timeline: list[dict[str, float]],
    stop: asyncio.Event,
) -> None:
    """Once a second: the hub's gauges, the gateway's RSS and open files."""
    while not stop.is_set():
        with contextlib.suppress(httpx.HTTPError):
            metrics = await scrape(http)
            timeline.append(
                {
                    "t": round(time.perf_counter() - measures.first_publish, 1),
                    "connections": metrics.get("jauge_ws_connections", float("nan")),
                    "slow_disconnects": metrics.get("jauge_ws_slow_disconnects_total", 0.0),
                    "rss_mib": round(rss_mib(pid), 1),
                    "fds": open_fds(pid),
                }
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


# --- the run --------------------------------------------------------------------------


def ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    cuts = percentiles(values)
    return {**{k: round(v * 1000, 1) for k, v in cuts.items()}, "max": round(max(values) * 1000, 1)}


async def run(args: argparse.Namespace, env: BenchEnv, fds: dict[str, int]) -> dict[str, Any]:
    plan = make_plan(args)
    stack = env.stack()
    stack.start("progress-svc")
    gateway = stack.start("gateway")
    await asyncio.to_thread(stack.wait_ready)
    opened: list[Connected] = []  # closed here whatever happens, before the stack stops
    try:
        results = await drive(args, env, plan, gateway.url, stack, opened)
    finally:
        for connected in opened:
            await close_clients(connected)
        step("stopping the stack")
        await asyncio.to_thread(stack.stop_all)
    return {"args": vars(args), "fd_limit": fds, **results}


async def drive(
    args: argparse.Namespace,
    env: BenchEnv,
    plan: Plan,
    gateway: str,
    stack: Stack,
    opened: list[Connected],
) -> dict[str, Any]:
    measures = Measures()
    pid = stack.service("gateway").process.pid
    tokens = await tokens_for(env, gateway, plan)
    url = gateway.replace("http://", "ws://")
    port = urlsplit(gateway).port or 80
    progress_pid = stack.service("progress-svc").process.pid
    connection = await aio_pika.connect(env.amqp_url)
    async with connection, httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EVENTS_EXCHANGE.name)
        jobs_exist = await watch_updates(await connection.channel(), measures, len(plan.jobs))

        step(f"{len(plan.jobs)} jobs: import.started")
        await publish(
            exchange, [started(j, plan.per_job * 2, plan.owner[j], "ws-bench") for j in plan.jobs]
        )
        await asyncio.wait_for(jobs_exist.wait(), 60)  # before anyone subscribes

        rss_before = rss_mib(pid)
        step(f"opening {args.clients} sockets, {args.batch} at a time")
        connected = await connect_all(args, url, plan, tokens)
        opened.append(connected)
        open_count = len(connected.readers) + len(connected.stalled)
        await asyncio.sleep(1.0)  # let the hub settle before we read its gauges
        rss_connected = rss_mib(pid)
        after_connect = await scrape(http)
        step(
            f"{open_count} open in {connected.seconds:.1f} s ({len(connected.stalled)} stalled), "
            f"{sum(connected.failures.values())} failed; gateway RSS "
            f"{rss_before:.0f} → {rss_connected:.0f} MiB"
        )

        measures.readers = len(connected.readers)
        reading = [asyncio.create_task(read_frames(r, measures)) for r in connected.readers]
        stop = asyncio.Event()
        lag: list[float] = []
        timeline: list[dict[str, float]] = []
        lagger = asyncio.create_task(loop_lag(lag, stop))
        cpu = CpuWindow({"gateway": pid, "progress-svc": progress_pid, "bench": os.getpid()})
        cpu.start()
        measures.first_publish = time.perf_counter()  # the timeline's zero
        sampler = asyncio.create_task(sample_gateway(http, pid, measures, timeline, stop))

        step(f"publishing {args.rate:g} file.imported/s for {args.duration:g} s")
        published = await publish_steadily(exchange, plan, args.rate, measures)
        for reader in connected.readers:  # those already past the end before it was known
            if not reader.done and reader.last_processed >= measures.final[reader.job]:
                reader.done = True
                measures.caught_up += 1
        if measures.caught_up >= measures.readers:
            measures.all_caught_up.set()
        step("waiting for every reader to see its job's last count")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(measures.all_caught_up.wait(), args.drain_timeout)
        cpu_used = cpu.stop()
        stop.set()
        await asyncio.gather(lagger, sampler)

        rss_end = rss_mib(pid)
        end_metrics = await scrape(http)
        queues = tcp_queues(port)  # before anyone reads the stalled sockets
        server_fds = open_fds(pid)
        step("reading what the stalled clients were left")
        fates = await asyncio.gather(*(fate_of(s, args.stalled_quiet) for s in connected.stalled))
        for task in reading:
            task.cancel()

    delivered_s = max(1e-9, measures.last_frame - measures.first_publish)
    readers = len(connected.readers)
    return {
        "clients": {
            "asked": args.clients,
            "open": open_count,
            "readers": readers,
            "stalled": len(connected.stalled),
            "failed": dict(connected.failures),
            "connect_seconds": round(connected.seconds, 2),
            "open_ms": ms([x / 1000 for x in connected.open_ms]),
        },
        "published": published,
        "frames": {
            "received": measures.frames,
            "matched": len(measures.frame_latency),
            "unmatched": measures.unmatched_frames,
            "per_s": round(measures.frames / delivered_s, 1),
            "events_per_reader": plan.per_job,
            "readers_caught_up": measures.caught_up,
            "readers_behind": readers - measures.caught_up,
        },
        "latency_ms": {
            "publish_to_frame": ms(measures.frame_latency),
            "publish_to_progress_updated": ms(measures.updated_latency),
            "gateway_push_histogram": {
                "p50_le": histogram_quantile(end_metrics, "jauge_ws_push_seconds", 0.5) * 1000,
                "p99_le": histogram_quantile(end_metrics, "jauge_ws_push_seconds", 0.99) * 1000,
            },
            "bench_loop_lag": ms(lag),
        },
        "gateway": {
            "rss_mib": {
                "before": round(rss_before, 1),
                "connected": round(rss_connected, 1),
                "end": round(rss_end, 1),
                "peak_sampled": max((s["rss_mib"] for s in timeline), default=rss_end),
            },
            "kib_per_socket": round((rss_connected - rss_before) * 1024 / max(1, open_count), 1),
            "open_fds_end": server_fds,
            "ws_connections_after_connect": after_connect.get("jauge_ws_connections"),
            "ws_connections_end": end_metrics.get("jauge_ws_connections"),
            "frames_sent": {
                k: v for k, v in end_metrics.items() if k.startswith("jauge_ws_frames_sent_total")
            },
            "frames_coalesced": end_metrics.get("jauge_ws_frames_coalesced_total"),
        },
        "cpu_cores": cpu_used,
        "stalled": stalled_summary(
            connected.stalled,
            fates,
            end_metrics,
            timeline,
            queues,
            lost=after_connect.get("jauge_ws_connections", 0.0)
            - end_metrics.get("jauge_ws_connections", 0.0),
        ),
        "timeline": timeline,
    }


def stalled_summary(
    stalled: list[Stalled],
    fates: list[tuple[str, int]],
    metrics: dict[str, float],
    timeline: list[dict[str, float]],
    queues: dict[str, list[int]],
    lost: float,
) -> dict[str, Any]:
    """What became of the clients that never read, from both ends of their sockets."""
    outcomes = Counter(outcome for outcome, _ in fates)
    full = [q for q in queues["server_send_q"] if q > 0]
    return {
        "count": len(stalled),
        "slow_disconnects_metric": metrics.get("jauge_ws_slow_disconnects_total", 0.0),
        "hub_connections_lost": lost,
        "disconnect_times_after_first_publish_s": disconnect_times(timeline),
        "client_saw": dict(outcomes),
        "frames_left_for_them": sum(frames for _, frames in fates),
        # the server's side before they were read: a socket the hub let go but the
        # process still holds shows up here with its unsent bytes
        "server_sockets_with_unsent_bytes": len(full),
        "server_unsent_bytes_total": sum(full),
        "server_unsent_bytes_max": max(full, default=0),
        "client_sockets_with_unread_bytes": sum(1 for q in queues["client_recv_q"] if q > 0),
    }


async def close_clients(connected: Connected) -> None:
    """Close every socket, a batch at a time, so the stack stops quickly afterwards."""
    sockets = [r.ws for r in connected.readers] + [s.ws for s in connected.stalled]
    for i in range(0, len(sockets), 500):
        await asyncio.gather(*(ws.close() for ws in sockets[i : i + 500]), return_exceptions=True)


def report(results: dict[str, Any]) -> None:
    c, f, lat, g = (
        results["clients"],
        results["frames"],
        results["latency_ms"],
        results["gateway"],
    )
    p, st, cpu = results["published"], results["stalled"], results["cpu_cores"]
    times = st["disconnect_times_after_first_publish_s"]

    def pct(d: dict[str, float]) -> str:
        return f"p50 {d['p50']} ms  p95 {d['p95']} ms  p99 {d['p99']} ms  max {d['max']} ms"

    rows = [
        (
            "sockets open (readers + stalled)",
            f"{c['open']} of {c['asked']} ({c['readers']} + {c['stalled']}), failed {c['failed']}",
        ),
        ("connecting took", f"{c['connect_seconds']} s; per socket {pct(c['open_ms'])}"),
        (
            "published file.imported",
            f"{p['events']} at {p['achieved_per_s']}/s "
            f"(max {p['max_behind_schedule_ms']} ms behind schedule)",
        ),
        ("publish → progress.updated", pct(lat["publish_to_progress_updated"])),
        ("publish → frame (readers)", pct(lat["publish_to_frame"])),
        (
            "gateway push (its histogram)",
            f"p50 ≤ {lat['gateway_push_histogram']['p50_le']:g} ms  "
            f"p99 ≤ {lat['gateway_push_histogram']['p99_le']:g} ms",
        ),
        ("bench's own loop lag", pct(lat["bench_loop_lag"])),
        (
            "frames received",
            f"{f['received']:,} ({f['matched']:,} matched), {f['per_s']:,}/s delivered; "
            f"{f['readers_caught_up']} readers saw their last count, {f['readers_behind']} not",
        ),
        ("frames coalesced by the hub", f"{g['frames_coalesced']}"),
        (
            "gateway RSS before / connected / end",
            f"{g['rss_mib']['before']} / {g['rss_mib']['connected']} / {g['rss_mib']['end']} MiB"
            f" (peak {g['rss_mib']['peak_sampled']})",
        ),
        ("gateway memory per socket", f"{g['kib_per_socket']} KiB"),
        (
            "ws_connections after connect / end",
            f"{g['ws_connections_after_connect']} / {g['ws_connections_end']}",
        ),
        ("gateway open files at end", f"{g['open_fds_end']}"),
        ("CPU (cores) while publishing", ", ".join(f"{k} {v}" for k, v in cpu.items())),
        (
            "stalled: hub's slow disconnects (1013)",
            f"{st['slow_disconnects_metric']:g} of {st['count']}, "
            f"at {times['slow_first_s']}…{times['slow_last_s']} s after the first publish",
        ),
        (
            "sockets leaving the hub, any reason",
            f"{st['hub_connections_lost']:g}, at {times['any_first_s']}…{times['any_last_s']} s "
            "after the first publish",
        ),
        (
            "server sockets with unsent bytes at end",
            f"{st['server_sockets_with_unsent_bytes']} "
            f"({st['server_unsent_bytes_total']:,} B, max {st['server_unsent_bytes_max']:,} B)",
        ),
        ("stalled: what they then read", f"{st['client_saw']}"),
    ]
    print(table(rows))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--agents", type=int, default=4, help="agent users owning the jobs")
    parser.add_argument("--rate", type=float, default=200.0, help="file.imported per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of publishing")
    parser.add_argument("--stalled-fraction", type=float, default=0.05)
    parser.add_argument(
        "--stalled-compression",
        action="store_true",
        help="stalled clients negotiate permessage-deflate, as browsers do (slower to fill)",
    )
    parser.add_argument("--batch", type=int, default=250, help="sockets opened at once")
    parser.add_argument("--open-timeout", type=float, default=60.0)
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument("--stalled-quiet", type=float, default=3.0)
    parser.add_argument("--report", default=None, help="report name (default ws-<clients>)")
    return parser.parse_args()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    # the bench holds every client socket and the gateway every server one
    fds = raise_fd_limit(args.clients + FD_MARGIN)
    with bench_env() as env:
        outcome = await run(args, env, fds)
        # before the databases are dropped: on a busy shared FerretDB that can take minutes
        report(outcome)
        print(f"\nwritten {write_report(args.report or f'ws-{args.clients}', outcome)}")
        return outcome


if __name__ == "__main__":
    # SIGTERM (a time limit) unwinds like Ctrl-C, so the services and vhost are removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(main(parse_args()))
