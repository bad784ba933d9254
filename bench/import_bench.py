"""Import benchmark: N small EDI files through the real stack, end to end.

    .venv/bin/python bench/import_bench.py --files 2000 [--replicas 2] [--profile DIR]

Starts progress-svc, import-svc (x replicas) and the gateway as local processes
(deploy/local/stack.py) on a RabbitMQ vhost, a database prefix and a data folder of
its own, removed afterwards; the broker and the store must be running
(deploy/local/infra.sh start). Prints:

- files/s: files divided by the job's running time (import.started → import.finished);
- end latency: from the last file's result being stored by import-svc to the gauge's
  final state arriving on a WebSocket subscribed to the job.

With `--profile DIR`, py-spy (a dev dependency) samples each import-svc replica while
the import runs and writes one flame graph per replica (and a raw folded file for
`grep`) into DIR.
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
from datetime import UTC, datetime
from pathlib import Path

import httpx
import websockets
from benchkit import bench_env, store_commands, table, write_report
from pymongo import MongoClient
from stack import add_user

from jauge_testkit.import_files import make_interchange, sample_invoice

TERMINAL = {"completed", "failed", "cancelled"}
PY_SPY = Path(sys.executable).parent / "py-spy"


@contextlib.contextmanager
def profiled(pids: list[int], out_dir: str | None) -> Iterator[None]:
    """py-spy records each import-svc replica while the import runs (`--profile DIR`)."""
    if out_dir is None:
        yield
        return
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    spies = []
    for i, pid in enumerate(pids):
        for fmt, suffix in (("flamegraph", "svg"), ("raw", "folded")):
            out = Path(out_dir) / f"import-svc-{i}.{suffix}"
            cmd = [str(PY_SPY), "record", "--pid", str(pid), "-o", str(out), "-f", fmt]
            spies.append(subprocess.Popen([*cmd, "--nonblocking", "--rate", "50"]))
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for spy in spies:
            spy.wait(60)


def write_files(inbox: Path, count: int) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        spec = sample_invoice(i % 5 + 1, f"B-{i:05d}", n_lines=2)
        (inbox / f"bench-{i:05d}.edi").write_bytes(make_interchange([spec], ref=f"B{i}"))


async def run(args: argparse.Namespace) -> int:
    with bench_env() as bench:
        stack = bench.stack()
        env = bench.env()
        try:
            stack.start("progress-svc")
            replicas = [stack.start("import-svc") for _ in range(args.replicas)]
            stack.start("gateway")
            add_user(env, "bench", "admin", "bench-password")
            stack.wait_ready(timeout_s=120)
            write_files(bench.data_dir / "inbox" / "edi", args.files)
            with profiled([r.process.pid for r in replicas], args.profile):
                final, seen_final_at, wall = await import_and_watch(
                    stack.service("gateway").url, args.timeout_s
                )
            commands: dict[str, int] = {}
            for replica in replicas:  # since they started: the import and its set-up
                for name, n in (await store_commands(replica.url)).items():
                    commands[name] = commands.get(name, 0) + n
        finally:
            stack.stop_all()
        with MongoClient(bench.mongo_url, tz_aware=True) as mongo:
            # each file's first recorded result carries when it was stored
            results = mongo[f"{bench.db_prefix}_import"]["file_results"].find({})
            last_file = max(d["finished_at"] for d in results if d.get("finished_at"))
        # printed before the bench's databases are dropped (slow on a busy FerretDB)
        return report(args, final, seen_final_at, wall, last_file, commands)


def report(
    args: argparse.Namespace,
    final: dict,
    seen_final_at: datetime,
    wall: float,
    last_file: datetime,
    commands: dict[str, int],
) -> int:
    started = datetime.fromisoformat(final["started_at"])
    ended = datetime.fromisoformat(final["finished_at"])
    running_s = (ended - started).total_seconds()
    figures = {
        "files": args.files,
        "replicas": args.replicas,
        "status": final["status"],
        "message": final["message"],
        "processed": final["processed"],
        "failed": final["failed"],
        "running_s": running_s,
        "files_per_s": args.files / running_s,
        "post_to_final_gauge_s": wall,
        "end_latency_s": (seen_final_at - last_file).total_seconds(),
        "store_commands": commands,
        "store_commands_per_file": round(sum(commands.values()) / args.files, 2),
    }
    counts = f"processed {final['processed']}/{final['total']}, failed {final['failed']}"
    rows = [
        ("files", f"{args.files} ({args.replicas} import-svc replica(s))"),
        ("status", f"{final['status']}: {final['message']}"),
        ("counts", counts),
        ("running time", f"{running_s:.1f} s (import.started → import.finished)"),
        ("throughput", f"{figures['files_per_s']:.1f} files/s ({wall:.1f} s POST → final gauge)"),
        ("end latency", f"{figures['end_latency_s']:.2f} s (last file stored → final gauge)"),
        (
            "store commands",
            f"{figures['store_commands_per_file']} per file, import-svc's replicas: "
            + ", ".join(
                f"{name} {n / args.files:.2f}"
                for name, n in sorted(commands.items(), key=lambda item: -item[1])
            ),
        ),
    ]
    print(table(rows))
    print(f"report: {write_report(args.report or f'import-{args.files}', figures)}")
    return 0 if final["status"] == "completed" and final["processed"] == args.files else 1


async def import_and_watch(gateway: str, timeout_s: float) -> tuple[dict, datetime, float]:
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        token = (
            await client.post(
                "/api/auth/token", data={"username": "bench", "password": "bench-password"}
            )
        ).json()["access_token"]
        ws_url = gateway.replace("http://", "ws://") + "/ws"
        async with websockets.connect(
            ws_url,
            open_timeout=10,
            max_size=None,
            additional_headers={"Authorization": f"Bearer {token}"},
        ) as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": "jobs"}))
            requested = time.perf_counter()
            response = await client.post(
                "/api/imports", json={"kind": "edi"}, headers={"Authorization": f"Bearer {token}"}
            )
            response.raise_for_status()
            job_id = response.json()["job_id"]
            async with asyncio.timeout(timeout_s):
                while True:
                    job = json.loads(await ws.recv()).get("job") or {}
                    if job.get("id") == job_id and job.get("status") in TERMINAL:
                        return job, datetime.now(UTC), time.perf_counter() - requested


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    parser.add_argument("--report", help="the report's name (default import-FILES)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy flame graphs of import-svc")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
