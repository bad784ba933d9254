"""One trace follows an import from the HTTP request to the WebSocket push."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from stack import add_user
from system_client import Socket, login

from jauge_testkit.import_files import make_interchange, sample_invoice

pytestmark = pytest.mark.system


def spans(trace_dir: Path) -> list[dict]:
    found = []
    for path in trace_dir.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            found.append(json.loads(line))
    return found


async def test_one_trace_id_across_every_service(make_stack, test_env, tmp_path) -> None:
    trace_dir = tmp_path / "traces"
    stack = make_stack(JAUGE_TRACE_DIR=str(trace_dir))
    stack.start_all()
    stack.wait_ready()
    add_user(test_env.env(), "alice", "agent", "alice-password")
    inbox = test_env.data_dir / "inbox" / "edi"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "a.edi").write_bytes(make_interchange([sample_invoice(1, "T-1", n_lines=2)]))
    gateway = stack.service("gateway").url
    token = await login(gateway, "alice", "alice-password")
    socket = await Socket.open(gateway, token)
    await socket.subscribe("jobs")
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.post(
            "/api/imports", json={"kind": "edi"}, headers={"Authorization": f"Bearer {token}"}
        )
    job_id = response.json()["job_id"]
    await socket.until(
        lambda f: (f.get("job") or {}).get("id") == job_id and f["job"]["status"] == "completed"
    )
    await socket.close()

    deadline = time.monotonic() + 10
    services: set[str] = set()
    pushed = False
    while True:
        collected = spans(trace_dir)
        posts = [s for s in collected if s["name"] == "POST /api/imports"]
        if posts:
            trace_id = posts[0]["context"]["trace_id"]
            in_trace = [s for s in collected if s["context"]["trace_id"] == trace_id]
            services = {s["resource"]["attributes"]["service.name"] for s in in_trace}
            pushed = any(s["name"] == "ws.push" for s in in_trace)
            if services >= {"gateway", "import-svc", "progress-svc"} and pushed:
                break
        if time.monotonic() > deadline:
            raise AssertionError(f"spans of the request's trace: {sorted(services)}, push={pushed}")
        await asyncio.sleep(0.3)
