"""Helpers of the gateway fault tests (tests/test_faults_gateway_*.py): a hard crash of
the private RabbitMQ node, and a recorder of what the gateway answered during a fault.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from faults_support import PrivateRabbit, _port_open

# gateway.errors' French message for a store that is away (gateway.error_handlers)
STORE_UNAVAILABLE = (
    "Service momentanément indisponible : la base de données ne répond pas, "
    "réessayez dans un instant."
)


def kill_rabbit(rabbit: PrivateRabbit, timeout_s: float = 30.0) -> int:
    """SIGKILL the node's Erlang VM (beam.smp), as `kill -9` of a crashed host would:
    no clean close of any connection, the clients see their sockets reset. Returns the
    pid killed; `rabbit.start()` starts the node again on the same data."""
    pid = int((rabbit.base / "rabbitmq.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    launcher = rabbit._launcher
    if launcher is not None:
        launcher.wait(timeout_s)  # rabbitmq-server ends with its VM
    deadline = time.monotonic() + timeout_s
    while _port_open(rabbit.amqp_port) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pid


@dataclass
class Answers:
    """Every status seen per route while a fault lasts (0: no HTTP answer at all: a
    reset, a refused connection, or no answer within the client's timeout)."""

    by_route: dict[str, Counter[int]] = field(default_factory=dict)
    slowest_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def add(self, route: str, status: int, elapsed_s: float, detail: str = "") -> None:
        self.by_route.setdefault(route, Counter())[status] += 1
        self.slowest_s = max(self.slowest_s, elapsed_s)
        if status == 0 or (status >= 500 and status != 503):
            self.errors.append(f"{route} -> {status} after {elapsed_s:.1f}s {detail[:200]}")

    def statuses(self) -> set[int]:
        return {status for counts in self.by_route.values() for status in counts}


async def timed(
    client: httpx.AsyncClient, answers: Answers, route: str, method: str, url: str, **kw: object
) -> httpx.Response | None:
    started = time.monotonic()
    try:
        response = await client.request(method, url, **kw)  # type: ignore[arg-type]
    except httpx.HTTPError as e:
        answers.add(route, 0, time.monotonic() - started, repr(e))
        return None
    answers.add(route, response.status_code, time.monotonic() - started, response.text)
    return response
