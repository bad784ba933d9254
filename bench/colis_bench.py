"""Benchmark of parcel (colis) tasks on the real stack (issue 4, point 9).

    .venv/bin/python bench/colis_bench.py [--clients 50] [--per-client 4] [--photo-kb 300]
    .venv/bin/python bench/colis_bench.py --accept [--load-rate 1000] [--seconds 30]
                                          [--profile DIR]

Starts progress-svc, colis-svc and the gateway with deploy/local/stack.py on a RabbitMQ
vhost and a database prefix of its own (removed afterwards), then:

1. answer time of `POST /api/lots/{id}/colis` with a ~300 KB photo, `--clients` clients
   posting at once, `--per-client` parcels each: p50, p90, p99, max;
2. parcels completed per minute: from the first POST until every task is completed.

With `--accept` (issue 18, item 1): the accept latency of the gateway's two busy routes
while the pipeline works. `--clients` agents, half posting parcels with the photo, half
starting imports, each posting again one second after its answer (then back to back),
while `--load-rate` file.imported/s flow through progress-svc (published from a process
of its own); `--profile DIR` records py-spy profiles of the gateway for each phase (raw,
for `py-spy`'s folded stacks). Each route's times are printed twice: as the agents saw
them, and as the gateway measured its own share (`jauge_http_request_seconds`, read from
its /metrics before and after the phase), beside how late the benchmark's own event loop
ran: on a machine whose cores the clients share, their lag is part of what they time.

Needs RabbitMQ (with its management API) and the document store running, as for the
system tests (`deploy/local/infra.sh start`). No pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from benchkit import (
    COLIS_FORM,
    BenchEnv,
    bench_env,
    file_event,
    histogram_quantile,
    http_histograms,
    percentiles,
    photo_of_about,
    started,
    supplier_file_dropper,
    write_report,
)
from pymongo import MongoClient
from stack import add_user


async def run(args: argparse.Namespace, gateway: str, bench: BenchEnv) -> None:
    async with httpx.AsyncClient(base_url=gateway, timeout=120) as client:
        token = (
            await client.post(
                "/api/auth/token", data={"username": "bench", "password": "bench-password"}
            )
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        lot = (await client.post("/api/lots", json={"type_lot": "cargo"}, headers=headers)).json()
        photo = photo_of_about(args.photo_kb)
        print(f"photo: {len(photo) / 1024:.0f} KB JPEG", flush=True)
        # warm-up: one parcel through the whole pipeline
        warm = await client.post(
            f"/api/lots/{lot['id']}/colis",
            data=COLIS_FORM,
            files={"image": ("p.jpg", photo, "image/jpeg")},
            headers=headers,
        )
        warm.raise_for_status()

        latencies: list[float] = []
        task_ids: list[str] = []
        errors: list[str] = []
        limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)

        async def agent(http: httpx.AsyncClient) -> None:
            for _ in range(args.per_client):
                started = time.perf_counter()
                response = await http.post(
                    f"/api/lots/{lot['id']}/colis",
                    data=COLIS_FORM,
                    files={"image": ("p.jpg", photo, "image/jpeg")},
                    headers=headers,
                )
                latencies.append(time.perf_counter() - started)
                if response.status_code == 202:
                    task_ids.append(response.json()["task_id"])
                else:
                    errors.append(f"{response.status_code} {response.text[:100]}")

        async with httpx.AsyncClient(base_url=gateway, timeout=120, limits=limits) as http:
            t0 = time.perf_counter()
            await asyncio.gather(*(agent(http) for _ in range(args.clients)))
            posted = time.perf_counter() - t0

        total = len(task_ids)
        print(
            f"POST /api/lots/{{id}}/colis with photo, {args.clients} concurrent clients, "
            f"{len(latencies)} requests in {posted:.1f} s ({len(latencies) / posted:.1f} req/s)"
        )
        ms = {q: v * 1000 for q, v in percentiles(latencies).items()}
        print(
            f"  answer time: p50 {ms['p50']:.0f} ms, p95 {ms['p95']:.0f} ms, "
            f"p99 {ms['p99']:.0f} ms, "
            f"max {max(latencies) * 1000:.0f} ms, mean {statistics.fmean(latencies) * 1000:.0f} ms"
        )
        if errors:
            print(f"  {len(errors)} refused, e.g. {errors[0]}")

        db = MongoClient(bench.mongo_url)[f"{bench.db_prefix}_colis"]
        deadline = time.monotonic() + args.timeout_s
        done = 0
        while time.monotonic() < deadline:
            done = db["tasks"].count_documents({"_id": {"$in": task_ids}, "status": "completed"})
            if done >= total:
                break
            await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - t0
        failed = db["tasks"].count_documents(
            {"_id": {"$in": task_ids}, "status": {"$in": ["failed_final", "cancelled"]}}
        )
        print(
            f"parcels completed: {done}/{total} in {elapsed:.1f} s from the first POST "
            f"= {done / elapsed * 60:.0f} parcels/min ({failed} failed)"
        )
        db.client.close()
        report = {
            "clients": args.clients,
            "requests": len(latencies),
            "accept_ms": ms,
            "accept_max_ms": max(latencies) * 1000,
            "requests_per_s": len(latencies) / posted,
            "refused": len(errors),
            "parcels_completed": done,
            "parcels_failed": failed,
            "parcels_per_min": done / elapsed * 60,
        }
        print(f"report: {write_report('colis', report)}")


@contextlib.contextmanager
def profiled(pid: int, out_dir: str | None, name: str) -> Iterator[None]:
    """py-spy (the dev dependency) samples the gateway while `name` runs."""
    if out_dir is None:
        yield
        return
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "50",
            "--nonblocking",
            "-o",
            str(Path(out_dir) / f"gateway-{name}.folded"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


async def steady_load(bench: BenchEnv, rate: float, seconds: float) -> float:
    """file.imported for 100 jobs at `rate` per second; returns the rate achieved."""
    jobs = [f"load-{j}" for j in range(100)]
    total = int(rate * seconds)
    connection = await aio_pika.connect(bench.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("jauge.events")

        async def publish(events: list[Any]) -> None:
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(e.model_dump_json().encode(), message_id=str(e.event_id)),
                        routing_key=e.type,
                    )
                    for e in events
                )
            )

        await publish([started(j, total) for j in jobs])
        t0 = time.perf_counter()
        sent = 0
        while sent < total:
            due = min(total, int((time.perf_counter() - t0) * rate) + 1)
            await publish([file_event(jobs[i % 100], i) for i in range(sent, due)])
            sent = due
            await asyncio.sleep(0.1)
        return sent / (time.perf_counter() - t0)


async def accept_phase(
    args: argparse.Namespace, gateway: str, bench: BenchEnv, headers: dict[str, str], lot: str
) -> dict[str, Any]:
    photo = photo_of_about(args.photo_kb)
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    answers: dict[str, list[float]] = {"imports": [], "colis": []}
    refused: list[str] = []
    async with httpx.AsyncClient(
        base_url=gateway, headers=headers, timeout=60, limits=limits
    ) as http:
        drop_supplier_file = supplier_file_dropper(bench.data_dir)

        async def start_import() -> httpx.Response:
            drop_supplier_file()
            return await http.post("/api/imports", json={"kind": "edi"})

        routes = {
            "imports": start_import,
            "colis": lambda: http.post(
                f"/api/lots/{lot}/colis",
                data=COLIS_FORM,
                files={"image": ("p.jpg", photo, "image/jpeg")},
            ),
        }
        deadline = time.perf_counter() + args.seconds

        async def agent(route: str) -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    response = await routes[route]()
                except httpx.TransportError as e:
                    refused.append(f"{route} {type(e).__name__}")
                    continue
                if response.status_code == 202:
                    answers[route].append((time.perf_counter() - t0) * 1000)
                else:
                    refused.append(f"{route} {response.status_code} {response.text[:100]}")
                await asyncio.sleep(args.think)

        server_before = await http_histograms(gateway)
        lag = asyncio.create_task(loop_lag_ms(deadline))
        # the load's publisher in a process of its own: beside the agents, its work
        # delayed their timing (the benchmark's loop lag is printed below)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            load = asyncio.get_running_loop().run_in_executor(
                pool, steady_load_in_process, bench, args.load_rate, args.seconds
            )
            await asyncio.gather(*(agent(("colis", "imports")[i % 2]) for i in range(args.clients)))
            achieved = await load
        server_after = await http_histograms(gateway)
        lags = await lag
    return {
        "think_s": args.think,
        "load_per_s": round(achieved, 1),
        "refused": len(refused),
        "refused_examples": refused[:3],
        "bench_loop_lag_ms": {k: round(v, 1) for k, v in percentiles(lags).items()},
        **{
            route: {
                "requests": len(ms),
                **{k: round(v, 1) for k, v in percentiles(ms).items()},
                "max": round(max(ms), 1) if ms else None,
                "server": {
                    f"p{int(q * 100)}": round(
                        histogram_quantile(
                            q,
                            server_before.get(ROUTES[route], []),
                            server_after.get(ROUTES[route], []),
                        ),
                        1,
                    )
                    for q in (0.5, 0.95, 0.99)
                },
            }
            for route, ms in answers.items()
        },
    }


# the two routes' templates, as the gateway labels its answer times (http_metrics.py)
ROUTES = {"imports": ("POST", "/api/imports"), "colis": ("POST", "/api/lots/{lot_id}/colis")}


async def loop_lag_ms(until: float, every_s: float = 0.05) -> list[float]:
    """How late this process's event loop wakes a 50 ms sleep, in ms: the part of the
    agents' timings that is the benchmark's own, not the server's."""
    lags = []
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        await asyncio.sleep(every_s)
        lags.append((time.perf_counter() - t0 - every_s) * 1000)
    return lags


def steady_load_in_process(bench: BenchEnv, rate: float, seconds: float) -> float:
    return asyncio.run(steady_load(bench, rate, seconds))


async def accept(args: argparse.Namespace, gateway: str, bench: BenchEnv, pid: int) -> None:
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as client:
        token = (
            await client.post(
                "/api/auth/token", data={"username": "bench", "password": "bench-password"}
            )
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        lot = (await client.post("/api/lots", json={"type_lot": "cargo"}, headers=headers)).json()
    phases = []
    for think in (1.0, 0.0):
        args.think = think
        print(f"[{time.strftime('%H:%M:%S')}] accept, {think:g} s between posts", flush=True)
        with profiled(pid, args.profile, f"think-{think:g}"):
            phases.append(await accept_phase(args, gateway, bench, headers, lot["id"]))
        phase = phases[-1]
        for route in ("imports", "colis"):
            r = phase[route]
            server = r["server"]
            print(
                f"  {route}: {r['requests']} answers, p50 {r['p50']:.0f} ms, "
                f"p95 {r['p95']:.0f} ms, p99 {r['p99']:.0f} ms, max {r['max']} ms; "
                f"the gateway's own time p50 {server['p50']:.0f} ms, "
                f"p95 {server['p95']:.0f} ms, p99 {server['p99']:.0f} ms",
                flush=True,
            )
        lag = phase["bench_loop_lag_ms"]
        print(
            f"  load {phase['load_per_s']} events/s, {phase['refused']} refused; "
            f"the benchmark's own loop late p50 {lag['p50']:.0f} ms, p99 {lag['p99']:.0f} ms",
            flush=True,
        )
    print(f"report: {write_report(args.report or 'colis-accept', {'phases': phases})}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--per-client", type=int, default=4)
    parser.add_argument("--photo-kb", type=int, default=300)
    parser.add_argument("--timeout-s", type=float, default=900)
    parser.add_argument("--accept", action="store_true", help="accept latency under load")
    parser.add_argument("--load-rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--profile", default=None, help="py-spy profiles of the gateway here")
    parser.add_argument("--report", default=None)
    args = parser.parse_args()
    with bench_env() as bench:
        stack = bench.stack(JAUGE_RPC_TIMEOUT_S="30")
        names = ["progress-svc", "colis-svc", "gateway"] + (["import-svc"] if args.accept else [])
        try:
            services = [stack.start(n) for n in names]
            stack.wait_ready(services, timeout_s=180)
            add_user(bench.env(), "bench", "agent", "bench-password")
            gateway = stack.service("gateway")
            if args.accept:
                asyncio.run(accept(args, gateway.url, bench, gateway.process.pid))
            else:
                asyncio.run(run(args, gateway.url, bench))
        finally:
            stack.stop_all()


if __name__ == "__main__":
    main()
