"""The four services as local processes: used by `make run` and by the system tests.

    python deploy/local/stack.py run        start everything, print where to click, Ctrl-C stops

Each service is `python -m <package>`; its settings come from the environment
(`JAUGE_*`), so the same launcher serves a developer's machine and the tests (which
give each run its own RabbitMQ vhost, database prefix, data folder and ports).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port: int


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("progress-svc", "progress_svc", 8103),
    ServiceSpec("import-svc", "import_svc", 8101),
    ServiceSpec("colis-svc", "colis_svc", 8102),
    ServiceSpec("gateway", "gateway", 8000),
)
SPECS = {spec.name: spec for spec in SERVICES}


@dataclass
class Running:
    spec: ServiceSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port_retries: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Stack:
    """Starts, watches and stops service processes sharing one environment."""

    env: dict[str, str]
    log_dir: Path
    free_ports: bool = False  # tests: any free port, so parallel runs never collide
    running: list[Running] = field(default_factory=list)

    def start(
        self, name: str, *, port: int | None = None, extra_env: dict[str, str] | None = None
    ) -> Running:
        spec = SPECS[name]
        if port is None:
            port = free_port() if self.free_ports else spec.port
        self.log_dir.mkdir(parents=True, exist_ok=True)
        instance = sum(1 for r in self.running if r.spec.name == name)
        log_path = self.log_dir / f"{name}-{instance}.log"
        env = {**os.environ, **self.env, **(extra_env or {})}
        running = Running(spec, port, self._spawn(spec, env, port, log_path), log_path, env)
        self.running.append(running)
        return running

    def _spawn(
        self, spec: ServiceSpec, env: dict[str, str], port: int, log_path: Path
    ) -> subprocess.Popen[bytes]:
        log = log_path.open("ab")
        try:
            return subprocess.Popen(
                [sys.executable, "-m", spec.module],
                env={**env, "JAUGE_PORT": str(port)},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()

    def _lost_its_port(self, service: Running) -> bool:
        """A free port picked for it was taken before it could bind (another process
        of the machine): started again on another one."""
        if not self.free_ports or service.port_retries >= 3:
            return False
        if "address already in use" not in tail(service.log_path, lines=5).lower():
            return False
        service.port_retries += 1
        service.port = free_port()
        service.process = self._spawn(service.spec, service.env, service.port, service.log_path)
        return True

    def service(self, name: str) -> Running:
        """The first running instance of `name`."""
        return next(r for r in self.running if r.spec.name == name)

    def start_all(self) -> list[Running]:
        return [self.start(spec.name) for spec in SERVICES]

    def wait_ready(self, services: list[Running] | None = None, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        for service in services or self.running:
            while True:
                if service.process.poll() is not None and not self._lost_its_port(service):
                    raise RuntimeError(f"{service.spec.name} exited:\n{tail(service.log_path)}")
                if is_ready(service.url) and listens_on(service.process.pid, service.port):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service.spec.name} not ready:\n{tail(service.log_path)}")
                time.sleep(0.2)

    def stop(self, service: Running, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if service.process.poll() is None:
            service.process.send_signal(sig)
            try:
                service.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()
        with contextlib.suppress(ValueError):
            self.running.remove(service)
        return service.process.returncode

    def stop_all(self) -> None:
        # gateway first, progress-svc last: nothing new comes in while the rest drains
        for service in sorted(self.running, key=lambda r: -SERVICES.index(r.spec)):
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        for service in list(self.running):
            self.stop(service)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` holds the listening socket of `port`: a /readyz answered on
    a service's port by another process (one that took the port between the pick and
    the bind) must not pass for it. True where /proc cannot tell (not Linux)."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not all(t.exists() for t in tables) or not Path(f"/proc/{pid}/fd").exists():
        return True
    listening = set()
    for table in tables:
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                listening.add(f"socket:[{inode}]")
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd) in listening for fd in fds.iterdir())
    except OSError:  # it exited meanwhile: the caller's poll() says so
        return False


def is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def add_user(env: dict[str, str], name: str, role: str, password: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "users",
            "add",
            name,
            "--role",
            role,
            "--password",
            password,
            "--update",
        ],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def local_env() -> dict[str, str]:
    """The local mode's settings: a JWT secret kept in var/ so sessions survive restarts."""
    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    secret_file = var / "jwt-secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(48))
        secret_file.chmod(0o600)
    return {
        "JAUGE_JWT_SECRET": secret_file.read_text().strip(),
        "JAUGE_DATA_DIR": str(var),
        "JAUGE_LOG_JSON": os.environ.get("JAUGE_LOG_JSON", "true"),
    }


def run() -> None:
    env = local_env()
    stack = Stack(env=env, log_dir=ROOT / "var" / "log")
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.start_all()
        stack.wait_ready(timeout_s=120)
        demo = {"agent": secrets.token_urlsafe(9), "admin": secrets.token_urlsafe(9)}
        for role, password in demo.items():
            add_user(env, f"demo-{role}", role, password)
        gateway = next(r for r in stack.running if r.spec.name == "gateway")
        print(
            "\nJauge is running.\n"
            f"  UI               {gateway.url}/\n"
            f"  API docs         {gateway.url}/docs\n"
            f"  AsyncAPI         {gateway.url}/asyncapi\n"
            "  RabbitMQ console http://127.0.0.1:15672/  (guest / guest, local only)\n"
            f"  demo agent       demo-agent / {demo['agent']}\n"
            f"  demo admin       demo-admin / {demo['admin']}\n"
            f"  logs             {stack.log_dir}/\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        while not stop:
            for service in stack.running:
                if service.process.poll() is not None:
                    print(f"{service.spec.name} exited; see {service.log_path}", file=sys.stderr)
                    stop = True
            time.sleep(0.5)
    finally:
        print("stopping services…", flush=True)
        stack.stop_all()


if __name__ == "__main__":
    if sys.argv[1:] != ["run"]:
        sys.exit("usage: stack.py run")
    run()
