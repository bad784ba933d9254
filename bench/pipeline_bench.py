"""`make bench`: the progress pipeline, side by side with the broker's ceiling and polling.

    .venv/bin/python bench/pipeline_bench.py [--events 20000] [--quick]

Measures, in one run, on the real broker and store:
1. the ceiling: raw aio-pika publish (persistent, confirms) and consume (manual ack);
2. progress-svc: events applied per second, to one job and to 1,000 jobs;
3. end-to-end latency, publish → WebSocket frame, at 100 and 1,000 events/s and flat out;
4. the seed's design (one row updated under a lock, browsers polling every second)
   against push, with the same store and the same number of browsers: staleness and
   store reads per second;
5. the accept latency of POST /api/imports and POST /api/lots/{id}/colis, 50 clients
   at once, while events keep the pipeline busy.
Prints a table and writes reports/bench/pipeline.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import aiormq.abc
import httpx
import orjson
import websockets
from benchkit import (
    COLIS_FORM,
    BenchEnv,
    bench_env,
    file_event,
    percentiles,
    started,
    store_commands,
    store_reads,
    supplier_file_dropper,
    table,
    write_report,
)
from pymongo import AsyncMongoClient
from stack import add_user

from jauge_shared.consumer import InOrderAcks
from progress_svc.settings import ProgressSettings

WINDOW = 500  # publishes in flight, each awaiting its confirm


async def publish_all(
    exchange: aio_pika.abc.AbstractExchange, messages: list[tuple[str, bytes]]
) -> float:
    """Publish (routing key, body) pairs with confirms, WINDOW at a time; returns seconds."""
    started_at = time.perf_counter()
    for i in range(0, len(messages), WINDOW):
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        body,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        content_type="application/json",
                    ),
                    routing_key=key,
                )
                for key, body in messages[i : i + WINDOW]
            )
        )
    return time.perf_counter() - started_at


def queue_arguments(queue_type: str) -> dict[str, Any]:
    """A benchmark queue of the type the services declare (quorum in production)."""
    return {"x-queue-type": "quorum"} if queue_type == "quorum" else {}


async def ceiling(
    env: BenchEnv, count: int, body: bytes, queue_type: str = "classic", plain: bool = True
) -> dict[str, float]:
    """What the broker does alone: publish with confirms, then consume twice.

    Two consumers: aio-pika's plain one (a message object per delivery, one ack each,
    prefetch 256), and progress-svc's own technique (`DirectConsumer`: the channel
    underneath, progress-svc's prefetch, `InOrderAcks`' acks many at a time, the very
    class). progress-svc's ratio is to the second: the same technique with no work.
    `plain=False` skips the first (the guard's quick run).
    """
    connection = await aio_pika.connect(env.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            f"bench.ceiling.{queue_type}", durable=True, arguments=queue_arguments(queue_type)
        )
        seconds = await publish_all(channel.default_exchange, [(queue.name, body)] * count)
        results = {"publish_per_s": count / seconds}
        if plain:
            await channel.set_qos(prefetch_count=256)
            results["consume_plain_per_s"] = count / await consume_plain(queue, count)
            await publish_all(channel.default_exchange, [(queue.name, body)] * count)
        results["consume_per_s"] = count / await consume_raw(connection, queue.name, count)
    return results


async def consume_plain(queue: aio_pika.abc.AbstractQueue, count: int) -> float:
    """`count` messages consumed with aio-pika's own consumer, one ack each; seconds."""
    received = 0
    done = asyncio.Event()
    t0 = time.perf_counter()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal received
        await message.ack()
        received += 1
        if received == count:
            done.set()

    tag = await queue.consume(on_message)
    await done.wait()
    elapsed = time.perf_counter() - t0
    await queue.cancel(tag)
    return elapsed


async def consume_raw(connection: aio_pika.abc.AbstractConnection, queue: str, count: int) -> float:
    """`count` messages consumed the way `DirectConsumer` does; returns seconds."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=ProgressSettings().prefetch)
    underlay = await channel.get_underlay_channel()
    acks = InOrderAcks(underlay, ProgressSettings().prefetch)
    received = 0
    done = asyncio.Event()

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        nonlocal received
        assert message.delivery_tag is not None
        acks.received(message.delivery_tag)
        acks.finished(message.delivery_tag)
        received += 1
        if received == count:
            done.set()

    t0 = time.perf_counter()
    await underlay.basic_consume(queue, on_message, no_ack=False)
    await done.wait()
    await acks.drain()
    elapsed = time.perf_counter() - t0
    await channel.close()
    return elapsed


async def watch_applied(
    channel: aio_pika.abc.AbstractChannel, jobs: int, per_job: int
) -> asyncio.Event:
    """Set once every job's progress.updated says `per_job` items are applied.

    Listening to progress.updated, as a gateway does, costs the store nothing; polling
    it with a count would scan every document and slow down what is being measured.
    """
    done = asyncio.Event()
    complete: set[str] = set()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind("jauge.events", routing_key="progress.updated")

    async def on_update(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        event = orjson.loads(message.body)
        if event["job"]["processed"] >= per_job:
            complete.add(event["job_id"])
            if len(complete) >= jobs:
                done.set()

    await queue.consume(on_update, no_ack=True)
    return done


async def throughput(env: BenchEnv, jobs: int, per_job: int) -> dict[str, float]:
    connection = await aio_pika.connect(env.amqp_url)
    prefix = f"t{jobs}-"
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("jauge.events")
        applied = await watch_applied(await connection.channel(), jobs, per_job)
        starts = [
            ("import.started", started(f"{prefix}{j}", per_job).model_dump_json().encode())
            for j in range(jobs)
        ]
        await publish_all(exchange, starts)
        files = [
            ("file.imported", file_event(f"{prefix}{j}", i).model_dump_json().encode())
            for i in range(per_job)
            for j in range(jobs)
        ]
        t0 = time.perf_counter()
        publish_s = await publish_all(exchange, files)
        await applied.wait()
        elapsed = time.perf_counter() - t0
    return {
        "events": len(files),
        "applied_per_s": len(files) / elapsed,
        "publish_per_s": len(files) / publish_s,
        "seconds": elapsed,
    }


async def guard_figures(env: BenchEnv, events: int = 2000, jobs: int = 200) -> dict[str, float]:
    """The quick run `make test` checks (tests/test_bench_guard.py): the consume ceiling
    (progress-svc's technique), then progress-svc alone applying `events` to one job and
    to `jobs` jobs; each ratio to the ceiling measured here, in the same run."""
    sample = file_event("job-with-a-typical-id-0000000000000", 1).model_dump_json().encode()
    ceiling_ = await ceiling(env, events, sample, plain=False)
    stack = env.stack()
    stack.start("progress-svc")
    stack.wait_ready()
    try:
        one = await throughput(env, 1, events)
        many = await throughput(env, jobs, max(1, events // jobs))
    finally:
        stack.stop_all()
    consume = ceiling_["consume_per_s"]
    return {
        "consume_per_s": round(consume),
        "one_job_per_s": round(one["applied_per_s"]),
        "many_jobs_per_s": round(many["applied_per_s"]),
        "one_job": one["applied_per_s"] / consume,
        "many_jobs": many["applied_per_s"] / consume,
    }


async def latency(
    env: BenchEnv, gateway: str, token: str, rate: float | None, events: int
) -> dict[str, Any]:
    """Publish → frame latency for one job's events at `rate` per second (None: flat out)."""
    job = f"lat-{rate or 'max'}"
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    async with websockets.connect(
        gateway.replace("http", "ws") + "/ws",
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        await ws.send(json.dumps({"op": "subscribe", "topic": f"job:{job}"}))
        await ws.recv()  # the (empty) snapshot

        async def read() -> None:
            known = 0
            while True:
                frame = orjson.loads(await ws.recv())
                processed = (frame.get("job") or {}).get("processed", 0)
                now = time.perf_counter()
                # a frame carries a batch: every event it covers was waiting until now,
                # not only the newest one
                for k in range(known + 1, processed + 1):
                    latencies.append(now - sent_at[k])
                known = max(known, processed)
                if known >= events:
                    return

        reader = asyncio.create_task(read())
        connection = await aio_pika.connect(env.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange("jauge.events")
            await exchange.publish(
                aio_pika.Message(started(job, events).model_dump_json().encode()),
                routing_key="import.started",
            )
            t0 = time.perf_counter()
            pending: set[asyncio.Task[Any]] = set()
            for i in range(events):
                if rate:
                    delay = t0 + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                sent_at[i + 1] = time.perf_counter()
                task = asyncio.create_task(
                    exchange.publish(
                        aio_pika.Message(
                            file_event(job, i).model_dump_json().encode(),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key="file.imported",
                    )
                )
                pending.add(task)
                task.add_done_callback(pending.discard)
                if len(pending) >= WINDOW:
                    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.gather(*pending)
            send_s = time.perf_counter() - t0
            await asyncio.wait_for(reader, 120)
    ms = [x * 1000 for x in latencies]
    return {
        "target_per_s": rate or "max",
        "achieved_per_s": round(events / send_s, 1),
        "events_seen": len(ms),
        **{k: round(v, 1) for k, v in percentiles(ms).items()},
    }


async def polling_vs_push(
    env: BenchEnv, gateway: str, token: str, files: int, browsers: int, rate: float
) -> dict[str, Any]:
    """The seed's design next to Jauge's, with the same store and number of browsers."""
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(env.mongo_url)
    table_ = mongo[f"{env.db_prefix}_seed"]["sseprogress"]
    await table_.insert_one({"_id": "seed", "processed": 0, "total": files})
    row_lock = asyncio.Lock()  # select_for_update(): one writer at a time
    done_at: dict[int, float] = {}
    reads = 0
    staleness: list[float] = []
    stop = asyncio.Event()

    async def worker(indexes: list[int]) -> None:
        for i in indexes:
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            async with row_lock:
                row = await table_.find_one({"_id": "seed"})
                # the file is done now; a browser may read the row before this worker
                # runs again, so the time is taken before the write, not after it
                done_at[row["processed"] + 1] = time.perf_counter()
                await table_.update_one(
                    {"_id": "seed"}, {"$set": {"processed": row["processed"] + 1}}
                )

    async def browser() -> None:
        nonlocal reads
        known = 0
        while not stop.is_set():
            row = await table_.find_one({"_id": "seed"})
            reads += 1
            now = time.perf_counter()
            for k in range(known + 1, row["processed"] + 1):
                staleness.append(now - done_at[k])
            known = row["processed"]
            if known >= files:
                return
            await asyncio.sleep(1.0)

    t0 = time.perf_counter()
    workers = [worker(list(range(w, files, 4))) for w in range(4)]
    polling = [browser() for _ in range(browsers)]
    await asyncio.gather(*workers, *polling)
    stop.set()
    poll_s = time.perf_counter() - t0
    await mongo.close()

    # push: the same rate of file events, the same number of browsers, on WebSockets
    job = "push-vs-poll"
    sent_at: dict[int, float] = {}
    push_staleness: list[float] = []

    async def push_browser() -> None:
        async with websockets.connect(
            gateway.replace("http", "ws") + "/ws",
            additional_headers={"Authorization": f"Bearer {token}"},
        ) as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": f"job:{job}"}))
            await ws.recv()  # the snapshot: the job has not started yet
            known = 0
            subscribed.append(ws)
            if len(subscribed) == browsers:
                ready.set()
            while known < files:
                frame = orjson.loads(await ws.recv())
                processed = (frame.get("job") or {}).get("processed", 0)
                now = time.perf_counter()
                for k in range(known + 1, processed + 1):
                    if k in sent_at:
                        push_staleness.append(now - sent_at[k])
                known = max(known, processed)

    ready = asyncio.Event()  # every browser subscribed
    subscribed: list[Any] = []
    push_reads_before = store_reads(await store_commands(gateway))
    push_t0 = time.perf_counter()
    clients = [asyncio.create_task(push_browser()) for _ in range(browsers)]
    await ready.wait()
    stream_reads_before = store_reads(await store_commands(gateway))
    connection = await aio_pika.connect(env.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("jauge.events")
        await exchange.publish(
            aio_pika.Message(started(job, files).model_dump_json().encode()),
            routing_key="import.started",
        )
        t1 = time.perf_counter()
        for i in range(files):
            await asyncio.sleep(max(0.0, t1 + i / rate - time.perf_counter()))
            await exchange.publish(
                aio_pika.Message(
                    file_event(job, i).model_dump_json().encode(),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key="file.imported",
            )
            sent_at[i + 1] = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*clients), 120)
    push_s = time.perf_counter() - push_t0
    push_reads_after = store_reads(await store_commands(gateway))
    push_reads = push_reads_after - push_reads_before
    poll_ms = [x * 1000 for x in staleness]
    push_ms = [x * 1000 for x in push_staleness]
    return {
        "browsers": browsers,
        "files": files,
        "rate_per_s": rate,
        "polling": {
            "store_reads_per_s": round(reads / poll_s, 1),
            **{k: round(v, 1) for k, v in percentiles(poll_ms).items()},
        },
        "push": {
            # the gateway's, from its own count of the commands it sent (its /metrics),
            # from the browsers' first connection to their last frame
            "store_reads": push_reads,
            "store_reads_per_s": round(push_reads / push_s, 1),
            # of which after every browser had its snapshot, while the events flowed
            "store_reads_while_streaming": push_reads_after - stream_reads_before,
            **{k: round(v, 1) for k, v in percentiles(push_ms).items()},
        },
    }


async def accept_under_load(
    env: BenchEnv,
    gateway: str,
    token: str,
    clients: int,
    seconds: float,
    load_rate: float,
    think_s: float,
) -> dict[str, Any]:
    """What an agent waits for a 202 while the pipeline is busy.

    Half the clients start imports, half register parcels (no photo), each posting again
    `think_s` after its answer (0: at once, a stress test: then every answer also adds
    work that competes for the same two cores); meanwhile `load_rate` file.imported
    events per second flow through progress-svc, and the parcels run in colis-svc.
    """
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=gateway, headers=headers, timeout=60, limits=limits
    ) as http:
        lot = (await http.post("/api/lots", json={"type_lot": "cargo"})).json()
        drop_supplier_file = supplier_file_dropper(env.data_dir)

        async def start_import() -> httpx.Response:
            drop_supplier_file()
            return await http.post("/api/imports", json={"kind": "edi"})

        routes = {
            "imports": start_import,
            "colis": lambda: http.post(f"/api/lots/{lot['id']}/colis", data=COLIS_FORM),
        }
        answers: dict[str, list[float]] = {name: [] for name in routes}
        refused: list[str] = []
        deadline = time.perf_counter() + seconds

        async def agent(route: str) -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    response = await routes[route]()
                except httpx.TransportError as e:
                    refused.append(
                        f"{route} {type(e).__name__} after {time.perf_counter() - t0:.1f} s"
                    )
                    continue
                if response.status_code == 202:
                    answers[route].append((time.perf_counter() - t0) * 1000)
                else:
                    refused.append(f"{route} {response.status_code} {response.text[:120]}")
                await asyncio.sleep(think_s)

        load = asyncio.create_task(steady_load(env, load_rate, seconds))
        await asyncio.gather(*(agent(list(routes)[i % 2]) for i in range(clients)))
        load_achieved = await load
    return {
        "clients": clients,
        "think_s": think_s,
        "load_target_per_s": load_rate,
        "load_achieved_per_s": round(load_achieved, 1),
        "refused": len(refused),
        "refused_examples": refused[:3],
        **{
            route: {
                "requests": len(ms),
                **{k: round(v, 1) for k, v in percentiles(ms).items()},
                "max": round(max(ms), 1) if ms else None,
            }
            for route, ms in answers.items()
        },
    }


async def steady_load(env: BenchEnv, rate: float, seconds: float) -> float:
    """file.imported events for 100 jobs at `rate` per second; returns the rate achieved."""
    jobs = [f"load-{j}" for j in range(100)]
    connection = await aio_pika.connect(env.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("jauge.events")
        total = int(rate * seconds)
        await publish_all(
            exchange,
            [("import.started", started(j, total).model_dump_json().encode()) for j in jobs],
        )
        t0 = time.perf_counter()
        sent = 0
        while sent < total:
            # one tick a tenth of a second: publish what the rate allows so far
            due = min(total, int((time.perf_counter() - t0) * rate) + 1)
            batch = [
                ("file.imported", file_event(jobs[i % 100], i).model_dump_json().encode())
                for i in range(sent, due)
            ]
            await publish_all(exchange, batch)
            sent = due
            await asyncio.sleep(0.1)
        return sent / (time.perf_counter() - t0)


def step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


STEPS = ("ceiling", "throughput", "latency", "polling", "accept")


@contextlib.contextmanager
def profiled(pid: int, out_dir: str | None, name: str, fmt: str = "flamegraph") -> Iterator[None]:
    """py-spy samples progress-svc while `name` runs (`--profile DIR`); a flame graph."""
    if out_dir is None:
        yield
        return
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    svg = Path(out_dir) / f"progress-svc-{name}.{'svg' if fmt == 'flamegraph' else 'txt'}"
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),  # a dev dependency
            "record",
            "--pid",
            str(pid),
            "-o",
            str(svg),
            "--format",
            fmt,
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
        step(f"profile written: {svg}")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """Every step on each queue type in turn, each in a vhost and databases of its own."""
    results: dict[str, Any] = {}
    for queue_type in args.queue_types:
        if args.baseline:
            step(f"--- {queue_type} queues, baseline {args.baseline}")
            results[f"{queue_type} baseline"] = await run_on(args, queue_type, args.baseline)
            step(json.dumps(results[f"{queue_type} baseline"], default=str))
        step(f"--- {queue_type} queues")
        results[queue_type] = await run_on(args, queue_type)
        step(json.dumps(results[queue_type], default=str))
    return results


async def run_on(
    args: argparse.Namespace, queue_type: str, baseline: str | None = None
) -> dict[str, Any]:
    """Every step on one queue type; `baseline`: a folder whose `progress_svc` package
    replaces this checkout's (an older version, to compare in the same run)."""
    results: dict[str, Any] = {}
    steps = set(args.steps)
    with bench_env() as env:
        sample = file_event("job-with-a-typical-id-0000000000000", 1).model_dump_json().encode()
        results["message_bytes"] = len(sample)
        if "ceiling" in steps:
            step("ceiling")
            results["ceiling"] = await ceiling(env, args.events, sample, queue_type)
        extra = {"PYTHONPATH": baseline} if baseline else {}
        stack = env.stack(JAUGE_QUEUE_TYPE=queue_type, **extra)
        progress = stack.start("progress-svc")
        gateway = stack.start("gateway")
        if "accept" in steps:
            stack.start("import-svc")
            stack.start("colis-svc")
        stack.wait_ready()
        add_user(env.env(), "admin", "admin", "bench-password")
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            response = await client.post(
                "/api/auth/token", data={"username": "admin", "password": "bench-password"}
            )
            token = response.json()["access_token"]
        pid = progress.process.pid
        variant = f"{queue_type}-baseline" if baseline else queue_type  # profiles' names
        try:
            if "throughput" in steps:
                step("progress-svc throughput, one job")
                with profiled(pid, args.profile, f"one-job-{variant}", args.profile_format):
                    results["one_job"] = await throughput(env, 1, args.events)
                step("progress-svc throughput, 1,000 jobs")
                with profiled(pid, args.profile, f"many-jobs-{variant}", args.profile_format):
                    results["many_jobs"] = await throughput(env, 1000, max(1, args.events // 1000))
            if "latency" in steps:
                step("latency")
                results["latency"] = [
                    await latency(env, gateway.url, token, rate, events)
                    for rate, events in (
                        (100.0, 1000 if not args.quick else 300),
                        (1000.0, 5000 if not args.quick else 2000),
                        (None, 5000 if not args.quick else 2000),
                    )
                ]
            if "polling" in steps:
                step("polling vs push")
                results["polling_vs_push"] = await polling_vs_push(
                    env,
                    gateway.url,
                    token,
                    files=300 if args.quick else 600,
                    browsers=50,
                    rate=50.0,
                )
            if "accept" in steps:
                results["accept"] = []
                for think_s in (1.0, 0.0):
                    step(f"accept latency under load, {think_s:.0f} s between a client's posts")
                    results["accept"].append(
                        await accept_under_load(
                            env,
                            gateway.url,
                            token,
                            clients=50,
                            seconds=10 if args.quick else 30,
                            load_rate=500.0 if args.quick else 1000.0,
                            think_s=think_s,
                        )
                    )
        finally:
            stack.stop_all()
    return results


def report_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """One queue type's figures as (label, value) rows."""
    rows = [("message size", f"{results['message_bytes']} B")]
    ceiling_ = results.get("ceiling")
    if ceiling_:
        rows += [
            ("ceiling: publish (persistent, confirms)", f"{ceiling_['publish_per_s']:,.0f} msg/s"),
            (
                "ceiling: consume, aio-pika's plain consumer (ack each, prefetch 256)",
                f"{ceiling_['consume_plain_per_s']:,.0f} msg/s",
            ),
            (
                "ceiling: consume, progress-svc's technique (raw channel, acks many at a time)",
                f"{ceiling_['consume_per_s']:,.0f} msg/s",
            ),
        ]
    for key, label in (("one_job", "1 job"), ("many_jobs", "1,000 jobs")):
        if key not in results:
            continue
        r = results[key]
        ratio = (
            f" ({r['applied_per_s'] / ceiling_['consume_per_s']:.0%} of consume ceiling)"
            if ceiling_
            else ""
        )
        rows.append(
            (f"progress-svc applied, {label}", f"{r['applied_per_s']:,.0f} events/s{ratio}")
        )
    for r in results.get("latency", []):
        rows.append(
            (
                f"publish → frame at {r['target_per_s']}/s (got {r['achieved_per_s']}/s)",
                f"p50 {r['p50']} ms  p95 {r['p95']} ms  p99 {r['p99']} ms",
            )
        )
    pp = results.get("polling_vs_push")
    if pp:
        rows.append(
            (
                f"polling 1 s, {pp['browsers']} browsers: staleness",
                f"p50 {pp['polling']['p50']} ms  p99 {pp['polling']['p99']} ms, "
                f"{pp['polling']['store_reads_per_s']} store reads/s",
            )
        )
        rows.append(
            (
                f"push, {pp['browsers']} browsers: staleness",
                f"p50 {pp['push']['p50']} ms  p99 {pp['push']['p99']} ms, "
                f"{pp['push']['store_reads_per_s']} store reads/s (the gateway's, counted; "
                f"{pp['push']['store_reads_while_streaming']} after the snapshots)",
            )
        )
    for accept in results.get("accept", []):
        for route, path in (("imports", "POST /api/imports"), ("colis", "POST .../colis")):
            r = accept[route]
            rows.append(
                (
                    f"{path}, {accept['clients']} clients posting every "
                    f"{accept['think_s']:.0f}+ s, {accept['load_achieved_per_s']:.0f} events/s",
                    f"p50 {r['p50']} ms  p95 {r['p95']} ms  p99 {r['p99']} ms "
                    f"({r['requests']} answers, {accept['refused']} refused)",
                )
            )
    return rows


def report(results: dict[str, Any]) -> None:
    """The queue types side by side: one column each."""
    types = list(results)
    columns = {t: dict(report_rows(results[t])) for t in types}
    labels = list(dict.fromkeys(label for t in types for label, _ in report_rows(results[t])))
    rows = [("", " | ".join(types))]
    rows += [(label, " | ".join(columns[t].get(label, "–") for t in types)) for label in labels]
    print(table(rows))


if __name__ == "__main__":
    # SIGTERM (a time limit) unwinds like Ctrl-C, so the services and vhost are removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--profile", metavar="DIR", help="py-spy flame graphs of progress-svc")
    parser.add_argument(
        "--profile-format",
        choices=("flamegraph", "raw", "speedscope"),
        default="flamegraph",
        help="py-spy's output (raw: collapsed stacks, one line each, easy to grep)",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run every step with the progress_svc package found in DIR (an older "
        "version, taken out with git show), before this checkout's, side by side",
    )
    parser.add_argument(
        "--queue-types",
        nargs="+",
        choices=("classic", "quorum"),
        default=["classic", "quorum"],
        help="each step runs on each (quorum: production's setting)",
    )
    parser.add_argument(
        "--guard",
        action="store_true",
        help="only the quick run of tests/test_bench_guard.py (its figures, for the docs)",
    )
    arguments = parser.parse_args()
    if arguments.guard:

        async def guard() -> dict[str, float]:
            with bench_env() as env:
                return await guard_figures(env)

        print(json.dumps(asyncio.run(guard()), indent=2))
        sys.exit(0)
    outcome = asyncio.run(main(arguments))
    report(outcome)
    print(f"\nwritten {write_report('pipeline', outcome)}")
