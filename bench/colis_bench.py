"""Benchmark of parcel (colis) tasks on the real stack (issue 4, point 9).

    .venv/bin/python bench/colis_bench.py [--clients 50] [--per-client 4] [--photo-kb 300]

Starts progress-svc, colis-svc and the gateway with deploy/local/stack.py on a RabbitMQ
vhost and a database prefix of its own (removed afterwards), then:

1. answer time of `POST /api/lots/{id}/colis` with a ~300 KB photo, `--clients` clients
   posting at once, `--per-client` parcels each: p50, p90, p99, max;
2. parcels completed per minute: from the first POST until every task is completed.

Needs RabbitMQ (with its management API) and the document store running, as for the
system tests (`deploy/local/infra.sh start`). No pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
from benchkit import COLIS_FORM, BenchEnv, bench_env, percentiles, photo_of_about, write_report
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--per-client", type=int, default=4)
    parser.add_argument("--photo-kb", type=int, default=300)
    parser.add_argument("--timeout-s", type=float, default=900)
    args = parser.parse_args()
    with bench_env() as bench:
        stack = bench.stack(JAUGE_RPC_TIMEOUT_S="30")
        try:
            started = [stack.start(n) for n in ("progress-svc", "colis-svc", "gateway")]
            stack.wait_ready(started, timeout_s=180)
            add_user(bench.env(), "bench", "agent", "bench-password")
            asyncio.run(run(args, stack.service("gateway").url, bench))
        finally:
            stack.stop_all()


if __name__ == "__main__":
    main()
