"""The soak of `make soak` (bench/soak.py), in a 2-minute version (`-m slow`).

The 30-minute run is `make soak`; its figures are in docs/reliability.md. Both run the
same program and the same verdict: every import and parcel ends as it must, nothing is
dead-lettered, and after the warm-up no process's memory, open files or threads, nor
the broker's connections, nor the queues' backlog, keep growing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from stack import ROOT

from conftest import Servers

# a soak has its own target (`make soak`, 30 minutes); this short one runs with -m slow
pytestmark = [pytest.mark.system, pytest.mark.slow]

# two minutes in `make test`: a minute of warm-up, a minute compared (`make soak`: 30)
MINUTES = float(os.environ.get("JAUGE_SOAK_MINUTES", "2"))


@pytest.mark.timeout(int(MINUTES * 60) + 600)
def test_minutes_of_mixed_load_leave_nothing_growing(servers: Servers, tmp_path: Path) -> None:
    report = tmp_path / "soak.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "soak.py"),
            "--minutes",
            str(MINUTES),
            "--report",
            str(report),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "JAUGE_AMQP_URL": servers.amqp_url,
            "JAUGE_MONGO_URL": servers.mongo_url,
            "JAUGE_RABBIT_MANAGEMENT_URL": servers.management_url,
        },
        capture_output=True,
        text=True,
        timeout=MINUTES * 60 + 540,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    result = json.loads(report.read_text())
    assert result["failures"] == []
    # the load really ran all along: imports, parcels and sockets throughout
    assert len(result["imports"]) >= MINUTES
    rows = dict(result["table"])
    assert int(rows["WebSocket sessions"].split()[0]) >= result["ws_clients"]
    load = [s for s in result["samples"] if s["phase"] == "load"]
    assert load[-1]["t"] >= MINUTES * 60 - 10
    # None: the gateway's /metrics did not answer that sample
    assert max(s["ws_open"] or 0 for s in load) >= result["ws_clients"] * 0.8
