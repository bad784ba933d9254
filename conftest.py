"""System-test fixtures: real RabbitMQ and a real MongoDB-protocol server.

By default they are the local servers of deploy/local/infra.sh (started here if not
running). With JAUGE_TEST_CONTAINERS=1 and a Docker engine, testcontainers starts
rabbitmq:3-management and mongo:7 instead. With JAUGE_AMQP_URL / JAUGE_MONGO_URL set,
those servers are used as they are.

Each test session gets its own RabbitMQ vhost and database prefix, so a test run
never touches `make run`'s data and two runs never see each other's messages.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest
from pymongo import MongoClient
from stack import ROOT, Stack

from jauge_shared.contracts.progress_lists import LISTS_COLLECTION, list_keys


@dataclass(frozen=True)
class Servers:
    amqp_url: str  # without vhost
    mongo_url: str
    management_url: str
    management_auth: tuple[str, str]


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    if os.environ.get("JAUGE_TEST_CONTAINERS") == "1" and _docker_available():
        from testcontainers.mongodb import MongoDbContainer
        from testcontainers.rabbitmq import RabbitMqContainer

        with (
            RabbitMqContainer("rabbitmq:3-management") as rabbit,
            MongoDbContainer("mongo:7") as mongo,
        ):
            host = rabbit.get_container_host_ip()
            yield Servers(
                amqp_url=f"amqp://guest:guest@{host}:{rabbit.get_exposed_port(5672)}/",
                mongo_url=mongo.get_connection_url(),
                management_url=f"http://{host}:{rabbit.get_exposed_port(15672)}",
                management_auth=("guest", "guest"),
            )
        return
    amqp = os.environ.get("JAUGE_AMQP_URL")
    mongo = os.environ.get("JAUGE_MONGO_URL")
    if not (amqp and mongo):
        subprocess.run(
            [str(ROOT / "deploy/local/infra.sh"), "start"],
            check=True,
            env={**os.environ, "JAUGE_PYTHON": sys.executable},
        )
    parts = urlsplit(amqp or "amqp://guest:guest@127.0.0.1:5672/")
    yield Servers(
        amqp_url=urlunsplit((parts.scheme, parts.netloc, "/", "", "")),
        mongo_url=mongo or "mongodb://127.0.0.1:27017/",
        management_url=os.environ.get(
            "JAUGE_RABBIT_MANAGEMENT_URL", f"http://{parts.hostname}:15672"
        ),
        management_auth=(parts.username or "guest", parts.password or "guest"),
    )


@dataclass(frozen=True)
class TestEnvironment:
    amqp_url: str
    mongo_url: str
    db_prefix: str
    vhost: str
    data_dir: Path
    servers: Servers

    def env(self) -> dict[str, str]:
        return {
            "JAUGE_AMQP_URL": self.amqp_url,
            "JAUGE_MONGO_URL": self.mongo_url,
            "JAUGE_DB_PREFIX": self.db_prefix,
            "JAUGE_DATA_DIR": str(self.data_dir),
            "JAUGE_JWT_SECRET": "test-secret-" + "x" * 40,
            "JAUGE_LOG_JSON": "true",
            "JAUGE_RETRY_BASE_DELAY_S": "0.05",
            "JAUGE_RETRY_MAX_DELAY_S": "0.5",
            "JAUGE_SCHEDULER_INTERVAL_S": "0.5",
        }

    def mongo(self) -> MongoClient:
        return MongoClient(self.mongo_url, tz_aware=True)

    def store_progress(self, *docs: dict[str, Any]) -> None:
        """Progress documents as progress-svc writes them: with their list entries."""
        with self.mongo() as client:
            database = client[f"{self.db_prefix}_progress"]
            entries = {key for doc in docs for key in list_keys(doc)}
            database[LISTS_COLLECTION].insert_many([{"_id": key} for key in sorted(entries)])
            database["progress"].insert_many(list(docs))


@pytest.fixture
def test_env(servers: Servers, tmp_path: Path) -> Iterator[TestEnvironment]:
    """A vhost, a database prefix and a data folder of this test's own, removed after."""
    name = "t" + secrets.token_hex(4)
    management = httpx.Client(
        base_url=servers.management_url, auth=servers.management_auth, timeout=10
    )
    vhost = f"jauge-{name}"
    management.put(f"/api/vhosts/{quote(vhost, safe='')}").raise_for_status()
    user = servers.management_auth[0]
    management.put(
        f"/api/permissions/{quote(vhost, safe='')}/{user}",
        json={"configure": ".*", "write": ".*", "read": ".*"},
    ).raise_for_status()
    base = urlsplit(servers.amqp_url)
    environment = TestEnvironment(
        amqp_url=urlunsplit((base.scheme, base.netloc, "/" + quote(vhost, safe=""), "", "")),
        mongo_url=servers.mongo_url,
        db_prefix=name,
        vhost=vhost,
        data_dir=tmp_path / "data",
        servers=servers,
    )
    environment.data_dir.mkdir()
    try:
        yield environment
    finally:
        management.delete(f"/api/vhosts/{quote(vhost, safe='')}")
        management.close()
        with environment.mongo() as client:
            for db in client.list_database_names():
                if db.startswith(name + "_"):
                    client.drop_database(db)


@pytest.fixture
def make_stack(test_env: TestEnvironment, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Factory: a Stack of service processes on this test's environment, stopped after."""
    stacks: list[Stack] = []

    def factory(**extra_env: str) -> Stack:
        stack = Stack(
            env={**test_env.env(), **extra_env}, log_dir=tmp_path / "logs", free_ports=True
        )
        stacks.append(stack)
        return stack

    yield factory
    for stack in stacks:
        stack.stop_all()
