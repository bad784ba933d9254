"""Fault-injection helpers: a private RabbitMQ node and a private FerretDB that a test
may stop and restart.

The shared servers of deploy/local/infra.sh serve every other test and `make run`, so
a test that takes the broker or the store away starts its own. The RabbitMQ node has
its own node name, AMQP, management and distribution ports, and its own data and log
folders under the test's tmp_path; it is started from Debian's package the way
infra.sh starts the shared one, and shares only epmd and the Erlang cookie. The
FerretDB is the project's own build on a port and data folder of its own. Stopping
and starting either keeps its data, as a real restart would.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aio_pika
import httpx
from pymongo import MongoClient
from stack import ROOT, Stack, add_user

# gateway.commands.send_command's answer when the broker does not confirm a command
COMMAND_NOT_DELIVERED = (
    "Service momentanément indisponible : la demande n'a pas été enregistrée, "
    "réessayez dans un instant."
)
# gateway.rpc.unavailable("des colis"): the parcel form asks colis-svc first
COLIS_UNAVAILABLE = (
    "Service des colis momentanément indisponible : la demande n'a pas abouti, "
    "réessayez dans un instant."
)

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def quiet_port(taken: set[int]) -> int:
    """A free port below the kernel's ephemeral range (32768+), so that no outgoing
    connection borrows it while the node is down and the restart can bind it again."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        if port not in taken and _port_free(port):
            taken.add(port)
            return port
    raise RuntimeError("no free port for a private RabbitMQ node")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class PrivateRabbit:
    """A RabbitMQ node of one test's own; `with PrivateRabbit(tmp) as rabbit: ...`."""

    def __init__(self, base: Path, *, start_timeout_s: float = 120.0) -> None:
        self.base = base
        self.start_timeout_s = start_timeout_s
        self.node = f"jauge-faults-{secrets.token_hex(4)}@localhost"
        taken: set[int] = set()
        self.amqp_port = quiet_port(taken)
        self.management_port = quiet_port(taken)
        self.dist_port = quiet_port(taken)
        self._launcher: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def _write_config(self) -> None:
        for folder in ("mnesia", "log"):
            (self.base / folder).mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text(
            "[rabbitmq_management,rabbitmq_consistent_hash_exchange].\n"
        )
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            "management.tcp.ip = 127.0.0.1\n"
            f"management.tcp.port = {self.management_port}\n"
            "loopback_users.guest = true\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )
        (self.base / "advanced.config").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").write_text("")

    def _env(self, *, server: bool) -> dict[str, str]:
        env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
        }
        # the CLI tools derive their own distribution ports from RABBITMQ_DIST_PORT
        # (+10000): they get the defaults instead, only the server needs this one
        if server:
            env["RABBITMQ_DIST_PORT"] = str(self.dist_port)
        else:
            env.pop("RABBITMQ_DIST_PORT", None)
        return env

    def ready(self) -> bool:
        if not _port_open(self.amqp_port):
            return False
        try:
            response = httpx.get(
                self.management_url + "/api/overview", auth=("guest", "guest"), timeout=2
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def start(self) -> None:
        """Start the node (again, on the same data folder) and wait until it answers."""
        assert self._launcher is None or self._launcher.poll() is not None, "already running"
        self._write_config()
        log = (self.base / "log" / "stdout.log").open("ab")
        self._launcher = subprocess.Popen(
            [RABBITMQ_SERVER],
            env=self._env(server=True),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.starts += 1
        deadline = time.monotonic() + self.start_timeout_s
        while not self.ready():
            if self._launcher.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.node} not ready:\n{self.log_tail()}")
            time.sleep(0.3)

    def stop(self, timeout_s: float = 60.0) -> None:
        """`rabbitmqctl stop`: the node shuts down cleanly (messages on disk stay)."""
        if self._launcher is None or self._launcher.poll() is not None:
            return
        subprocess.run(
            [RABBITMQCTL, "-n", self.node, "stop"],
            env=self._env(server=False),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
        try:
            self._launcher.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._launcher.kill()  # our own launcher, by its handle
            self._launcher.wait()
        deadline = time.monotonic() + timeout_s
        while _port_open(self.amqp_port) and time.monotonic() < deadline:
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL of the node's process group (beam.smp and its helpers), as a crash or
        the OOM killer would: nothing is flushed, no client is told."""
        if self._launcher is None or self._launcher.poll() is not None:
            return
        os.killpg(self._launcher.pid, signal.SIGKILL)
        self._launcher.wait()
        deadline = time.monotonic() + 30
        while _port_open(self.amqp_port) and time.monotonic() < deadline:
            time.sleep(0.2)

    def ctl(self, *args: str) -> str:
        result = subprocess.run(
            [RABBITMQCTL, "-n", self.node, *args],
            env=self._env(server=False),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout

    def queues(self) -> dict[str, int]:
        """Every queue of the default vhost and its message count (ready + unacked),
        straight from the node (the management API's counts lag by seconds)."""
        out = self.ctl("list_queues", "-q", "--formatter", "json", "name", "messages")
        rows: list[dict[str, Any]] = json.loads(out)
        return {str(row["name"]): int(row["messages"]) for row in rows}

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in sorted((self.base / "log").glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts) or "(no log)"

    def __enter__(self) -> PrivateRabbit:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class PrivateFerretDB:
    """A FerretDB of one test's own, started as infra.sh's start_ferretdb starts the
    shared one (SQLite backend, its own data and state folders under `home`), on a quiet
    port so that it can be stopped and started again where it was, on the same data."""

    BINARY = ROOT / ".tools" / "bin" / "ferretdb"

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = quiet_port(set())
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        return self.home / "ferretdb.log"

    def start(self, timeout_s: float = 30.0) -> None:
        """Start (or restart, same port and data) and wait until it answers ping."""
        assert self.process is None or self.process.poll() is not None, "already running"
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.BINARY),
                    "--handler=sqlite",
                    f"--sqlite-url=file:{self.home / 'data'}/",
                    f"--state-dir={self.home}",
                    f"--listen-addr=127.0.0.1:{self.port}",
                    "--debug-addr=127.0.0.1:0",
                    "--telemetry=disable",
                    "--log-level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"ferretdb exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"ferretdb not answering:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        """Stop it (SIGTERM; SIGKILL for a crash) and wait until its port is closed."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()  # our own process, by its handle
            self.process.wait()
        deadline = time.monotonic() + timeout_s
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def answers(self) -> bool:
        client: MongoClient[dict[str, object]]
        with (
            contextlib.suppress(Exception),
            MongoClient(self.url, serverSelectionTimeoutMS=500, connectTimeoutMS=500) as client,
        ):
            client.admin.command("ping")
            return True
        return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


USERS = {"alice": "agent", "bob": "agent", "root": "admin"}
# one message at a time per worker: the load is still running when the fault comes
WORKER_ENV = {"JAUGE_PREFETCH": "1"}


def start_stack(make_stack: Callable[..., Stack], env: dict[str, str], **extra: str) -> Stack:
    """The four services, workers taking one message at a time, colis-svc's test hooks
    on (a parcel's description can slow its steps), and the users of `USERS`."""
    stack: Stack = make_stack(**{**env, **extra})
    stack.start("progress-svc")
    stack.start("import-svc", extra_env=WORKER_ENV)
    stack.start("colis-svc", extra_env={**WORKER_ENV, "JAUGE_TEST_HOOKS": "true"})
    stack.start("gateway")
    for name, role in USERS.items():
        add_user(env, name, role, f"{name}-password")
    stack.wait_ready(timeout_s=180)
    return stack


async def dead_letter_counts(test_env: Any) -> dict[str, int]:
    """Every `.dlq` of the test's vhost (the management API lists them) and its message
    count, read exactly by a passive declare (the API's counts lag a few seconds)."""
    servers = test_env.servers
    async with httpx.AsyncClient(auth=servers.management_auth, timeout=10) as client:
        response = await client.get(
            f"{servers.management_url}/api/queues/{quote(test_env.vhost, safe='')}"
        )
    response.raise_for_status()
    names = sorted(q["name"] for q in response.json() if q["name"].endswith(".dlq"))
    counts: dict[str, int] = {}
    connection = await aio_pika.connect(test_env.amqp_url)
    async with connection:
        for name in names:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, passive=True)
            count = queue.declaration_result.message_count
            assert count is not None, name
            counts[name] = count
            await channel.close()
    return counts


def dead_lettered_in_logs(log_dir: Path) -> list[str]:
    return [
        f"{log.name}: {line[:300]}"
        for log in sorted(log_dir.glob("*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "dead-lettered" in line
    ]
