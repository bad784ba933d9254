"""`jauge repairs` on the real store, through the gateway's `jauge` and jauge-ops' own
command (issue 17: the operator tools of every service are a package of their own).

`python -m gateway.cli repairs` used to answer "No such command": the command was
registered after the module's `app()` call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.system


@pytest.mark.parametrize("module", ["gateway.cli", "jauge_ops.cli"])
def test_repairs_lists_the_recent_repairs_of_progress_svc(test_env, module: str) -> None:
    now = datetime.now(UTC)
    with test_env.mongo() as client:
        repairs = client[f"{test_env.db_prefix}_progress"]["repairs"]
        repairs.insert_many(
            [
                {
                    "_id": "e1",
                    "job_id": "j1",
                    "event": "file.imported",
                    "producer": "import-svc",
                    "at": now - timedelta(minutes=5),
                },
                {
                    "_id": "e0",
                    "job_id": "j0",
                    "event": "import.finished",
                    "producer": "import-svc",
                    "at": now - timedelta(days=3),
                },
            ]
        )
    result = subprocess.run(
        [sys.executable, "-m", module, "repairs", "--json"],
        env={**os.environ, **test_env.env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert [r["job_id"] for r in json.loads(result.stdout)] == ["j1"]  # the last 24 h
