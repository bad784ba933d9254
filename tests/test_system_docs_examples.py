"""The examples of docs/api.md and docs/events.md, run as written on the real system.

A documentation example that no longer works is worse than none: these tests start
the scripts in docs/examples/ as separate processes against a real stack and check
what they print.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from stack import add_user
from system_colis_support import FAST
from system_colis_support import Api as ColisApi
from system_imports_support import USERS, edi_batch, write_inbox

pytestmark = pytest.mark.system

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


async def run_example(script: str, *args: str, env: dict[str, str] | None = None):
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def next_json_line(process: asyncio.subprocess.Process, timeout_s: float = 60) -> dict:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout_s)
    assert line, "the example stopped: " + (await process.stderr.read()).decode()[-2000:]
    return json.loads(line)


async def test_another_system_hears_file_imported_and_colis_step_changed_on_its_own_queue(
    make_stack, test_env
) -> None:
    stack = make_stack(**FAST)
    stack.start_all()
    stack.wait_ready()
    for name, role in USERS.items():
        add_user(test_env.env(), name, role, f"{name}-password")
    files = {name: data for name, (data, _) in edi_batch(3).items()}
    files["vide.edi"] = b""
    write_inbox(test_env.data_dir, "edi", files)
    gateway = stack.service("gateway").url

    listener = await run_example("events_listener.py", "--amqp-url", test_env.amqp_url)
    try:
        assert (await next_json_line(listener))["listening"] == "billing.jauge-events"

        follower = await run_example(
            "follow_job.py",
            "--url",
            gateway,
            "--user",
            "alice",
            "--kind",
            "edi",
            env={"JAUGE_PASSWORD": "alice-password", "PATH": ""},
        )
        out, err = await asyncio.wait_for(follower.communicate(), 120)
        lines = out.decode().splitlines()
        assert follower.returncode == 0, (out + err).decode()
        assert lines[0].startswith("job ") and "accepted" in lines[0]
        assert lines[-1].startswith("completed  4/4 (100 %), 1 in error"), lines

        api = await ColisApi.as_user(gateway, "alice")
        try:
            lot = await api.lot()
            task_id = (await api.create_colis(lot["id"])).json()["task_id"]
        finally:
            await api.close()

        imported: dict[str, bool] = {}
        steps: list[str] = []
        while not steps or steps[-1] != "completed":
            event = await next_json_line(listener)
            if event["type"] == "file.imported":
                imported[event["file"]] = event["ok"]
            else:
                assert event["type"] == "colis.step_changed" and event["task_id"] == task_id
                steps.append(event["status"])
        assert imported == {**{name: True for name in files}, "vide.edi": False}
        assert steps[0] != "completed" and len(steps) > 2
    finally:
        listener.terminate()
        await listener.wait()
