"""deploy/local/infra.sh's set-up output: what it does, and on failure one line that says
where the log is (issue 17, point 7: a pymongo traceback of ~35 lines was printed each
time it waited for FerretDB to answer).

The script starts a stand-in "FerretDB" of this test's own that never answers, on a free
port, with the shared broker left alone (JAUGE_AMQP_URL set: someone else's).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_start(tmp_path: Path, binary: Path, timeout_s: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "JAUGE_MONGO_URL"}
    env.update(
        JAUGE_AMQP_URL=env.get("JAUGE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        JAUGE_INFRA_DIR=str(tmp_path / "infra"),
        JAUGE_INFRA_MONGO_PORT=str(free_port()),
        JAUGE_FERRETDB_BIN=str(binary),
        JAUGE_INFRA_START_TIMEOUT_S=str(timeout_s),
        JAUGE_PYTHON=sys.executable,
    )
    try:
        return subprocess.run(
            [str(ROOT / "deploy/local/infra.sh"), "start"],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s + 60,
        )
    finally:
        pid_file = tmp_path / "infra" / "ferretdb" / "ferretdb.pid"
        if pid_file.exists():  # the stand-in this test started, by its own pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)


def test_a_store_that_never_answers_gives_one_clear_line_and_no_traceback(
    tmp_path: Path,
) -> None:
    silent = tmp_path / "silent-ferretdb"
    silent.write_text("#!/bin/sh\necho 'stand-in: never listening'\nexec sleep 60\n")
    silent.chmod(0o755)
    result = run_start(tmp_path, silent, timeout_s=3)
    lines = result.stderr.splitlines()
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert all(line.startswith("[infra] ") for line in lines), lines
    log = tmp_path / "infra" / "ferretdb" / "ferretdb.log"
    assert lines[-1] == f"[infra] ferretdb did not answer within 3s: see {log}", lines
    assert "stand-in: never listening" in log.read_text()
    assert len(lines) <= 3, lines  # starting, waiting, the failure
