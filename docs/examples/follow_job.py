"""Start an import (or take a job id) and follow it on the WebSocket until it ends.

    python docs/examples/follow_job.py --url http://127.0.0.1:8000 --user alice --kind edi
    python docs/examples/follow_job.py --url ... --user alice --job <job_id>

The password is read from JAUGE_PASSWORD, or asked for. Prints one line per state and
exits 0 when the job completed, 1 when it failed or was cancelled. If the connection
drops, it reconnects and subscribes again: the snapshot it then gets is the whole
current state, so nothing is missed (DESIGN.md, WebSocket protocol).

Needs only httpx and websockets.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys

import httpx
import websockets

FINAL = {"completed": 0, "failed": 1, "cancelled": 1, "failed_final": 1}


async def token_for(client: httpx.AsyncClient, user: str, password: str) -> str:
    response = await client.post("/api/auth/token", data={"username": user, "password": password})
    if response.status_code != 200:
        sys.exit(f"login refused ({response.status_code}): {response.json().get('detail')}")
    return str(response.json()["access_token"])


async def start_import(client: httpx.AsyncClient, kind: str) -> str:
    response = await client.post("/api/imports", json={"kind": kind})
    if response.status_code != 202:
        sys.exit(f"import refused ({response.status_code}): {response.json().get('detail')}")
    body = response.json()
    print(f"job {body['job_id']} accepted: {body['status']}", flush=True)
    return str(body["job_id"])


def describe(job: dict[str, object]) -> str:
    failed = f", {job['failed']} in error" if job.get("failed") else ""
    step = f" [{job['current_step']}]" if job.get("current_step") else ""
    return (
        f"{job['status']:<10} {job['processed']}/{job['total']} ({job['percent']:.0f} %)"
        f"{failed}{step} {job.get('message') or ''}".rstrip()
    )


async def follow(ws_url: str, token: str, job_id: str) -> int:
    """Returns the exit status once the job is over."""
    while True:
        try:
            async with websockets.connect(
                f"{ws_url}/ws", additional_headers={"Authorization": f"Bearer {token}"}
            ) as socket:
                await socket.send(json.dumps({"op": "subscribe", "topic": f"job:{job_id}"}))
                async for raw in socket:
                    frame = json.loads(raw)
                    if frame["type"] == "error":
                        sys.exit(f"refused: {frame['code']}: {frame['message']}")
                    job = frame.get("job")
                    if job is None:  # not created yet: the next update brings it
                        continue
                    print(describe(job), flush=True)
                    if job["status"] in FINAL:
                        return FINAL[str(job["status"])]
        except (OSError, websockets.ConnectionClosed) as e:
            print(f"connection lost ({e}); reconnecting", file=sys.stderr, flush=True)
            await asyncio.sleep(1)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--user", required=True)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--kind", help="start an import of this kind's inbox (edi, bbgr_...)")
    target.add_argument("--job", help="follow an existing job or parcel task")
    args = parser.parse_args()
    password = os.environ.get("JAUGE_PASSWORD") or getpass.getpass()

    async with httpx.AsyncClient(base_url=args.url, timeout=30) as client:
        token = await token_for(client, args.user, password)
        client.headers["Authorization"] = f"Bearer {token}"
        job_id = args.job or await start_import(client, args.kind)
    return await follow(args.url.replace("http", "ws", 1), token, job_id)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
