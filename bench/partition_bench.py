"""`make bench-partitions`: progress-svc's throughput with 1, 2 and 3 replicas, partitioned.

    .venv/bin/python bench/partition_bench.py [--jobs 1000] [--per-job 10] [--partitions 4]

In one run, on the real broker and store: the single queue with one replica (the
baseline), then `--partitions` partitions with 1, 2 and 3 replicas. Each run has its
own vhost and database. The replicas first get a warm-up load so that they share the
partitions (a replica steps back from what is beyond its share every
JAUGE_REBALANCE_INTERVAL_S). Then `--jobs` jobs of `--per-job` events each are
published, and the run measures how long until every job's progress.updated shows them
all applied. The split of the partitions between the replicas is read from the
management API. Prints a table and writes reports/bench/partitions.json.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import httpx
from benchkit import BenchEnv, bench_env, file_event, started, table, write_report
from pipeline_bench import watch_applied

from jauge_shared.contracts.envelope import JOB_ID_HEADER
from jauge_shared.topology import progress_partitions

WINDOW = 500


async def publish_all(exchange: aio_pika.abc.AbstractExchange, events: list[Any]) -> None:
    for i in range(0, len(events), WINDOW):
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        event.model_dump_json().encode(),
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        content_type="application/json",
                        headers={JOB_ID_HEADER: event.job_id},
                    ),
                    routing_key=event.type,
                )
                for event in events[i : i + WINDOW]
            )
        )


def split(env: BenchEnv, partitions: int) -> dict[str, int]:
    """How many partitions each replica is the active consumer of."""
    vhost = urlsplit(env.amqp_url).path.lstrip("/")
    active: Counter[str] = Counter()
    with httpx.Client(base_url=env.management_url, auth=("guest", "guest")) as http:
        # a replica has one connection per partition, each named after the replica
        replica_of = {
            c["name"]: c.get("user_provided_name") or c["name"]
            for c in http.get(f"/api/vhosts/{quote(vhost, safe='')}/connections").json()
        }
        for spec in progress_partitions(partitions):
            queue = http.get(f"/api/queues/{quote(vhost, safe='')}/{spec.name}").json()
            for consumer in queue.get("consumer_details", []):
                if consumer.get("activity_status") == "single_active":
                    connection = consumer["channel_details"]["connection_name"]
                    active[replica_of.get(connection, connection)] += 1
    return dict(active)


async def run(partitions: int, replicas: int, jobs: int, per_job: int) -> dict[str, Any]:
    with bench_env() as env:
        stack = env.stack(JAUGE_PROGRESS_PARTITIONS=str(partitions), JAUGE_REBALANCE_INTERVAL_S="1")
        for _ in range(replicas):
            stack.start("progress-svc")
        stack.wait_ready()
        try:
            connection = await aio_pika.connect(env.amqp_url)
            async with connection:
                channel = await connection.channel(publisher_confirms=True)
                exchange = await channel.get_exchange("jauge.events")
                # warm-up: traffic on every partition, so that the replicas share them
                warm = [started(f"w{j}", 1) for j in range(200)]
                for _ in range(8):
                    await publish_all(exchange, warm)
                    await asyncio.sleep(1)
                shares = await asyncio.to_thread(split, env, partitions) if partitions > 1 else {}
                applied = await watch_applied(await connection.channel(), jobs, per_job)
                await publish_all(exchange, [started(f"j{j}", per_job) for j in range(jobs)])
                files = [file_event(f"j{j}", i) for i in range(per_job) for j in range(jobs)]
                t0 = time.perf_counter()
                await publish_all(exchange, files)
                await applied.wait()
                elapsed = time.perf_counter() - t0
        finally:
            stack.stop_all()
    return {
        "partitions": partitions,
        "replicas": replicas,
        "events": len(files),
        "applied_per_s": len(files) / elapsed,
        "seconds": elapsed,
        "active_partitions_per_replica": sorted(shares.values(), reverse=True),
    }


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = [(1, 1)] + [(args.partitions, r) for r in (1, 2, 3)]
    results = []
    for partitions, replicas in runs:
        print(f"… {partitions} partition(s), {replicas} replica(s)", file=sys.stderr, flush=True)
        results.append(await run(partitions, replicas, args.jobs, args.per_job))
    return results


def report(results: list[dict[str, Any]]) -> None:
    rows = []
    for r in results:
        label = f"{r['partitions']} partition(s), {r['replicas']} replica(s)"
        shares = "/".join(str(n) for n in r["active_partitions_per_replica"]) or "-"
        rows.append((label, f"{r['applied_per_s']:,.0f} events/s (active partitions: {shares})"))
    print(table(rows))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--per-job", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=6)
    arguments = parser.parse_args()
    outcome = asyncio.run(main(arguments))
    report(outcome)
    print(f"\nwritten {write_report('partitions', {'runs': outcome})}")
