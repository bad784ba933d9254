"""In-memory fakes for the router tests: the app as `create_app` builds it, its state
made of fakes instead of a store and a broker (the lifespan, which would connect them,
never runs under httpx's ASGITransport).

- `FakeCollection`: the progress collection and its list entries, with the few query
  operators the progress view uses ($in, $ne, $gt(e), $lt(e), $or, dotted keys), sort
  and limit, projections ignored; `gw.store(doc)` writes a document with its entries,
  as progress-svc does;
- `FakeRpc`: the request/reply client; `answer(routing_key, body)` scripts the service,
  and `asked` keeps every request (routing key, decoded body);
- `FakePublisher`: what `send_command` publishes, kept in `published`, or refused.

The test modules take the `gw` fixture and import `Gateway` for its type only (their
module name would not find this conftest at run time under `--import-mode=importlib`).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from blobs_support import memory_buckets
from fastapi import FastAPI

from gateway.hub import Hub
from gateway.main import COMMANDS, create_app
from gateway.photo_handovers import PhotoHandovers
from gateway.progress_view import ProgressView
from gateway.security import create_access_token
from gateway.sessions import SessionWatch
from gateway.settings import GatewaySettings
from gateway.state import GatewayState
from gateway.upload_store import UploadStore
from gateway.users import Role, User
from jauge_shared.contracts import message_type
from jauge_shared.contracts.progress_lists import list_keys

SECRET = "router-tests-" + "x" * 40


def _value(doc: dict[str, Any], key: str) -> Any:
    for part in key.split("."):  # "summary.client_id"
        doc = doc.get(part) if isinstance(doc, dict) else None  # type: ignore[assignment]
    return doc


def _compares(value: Any, op: str, arg: Any) -> bool:
    if op == "$in":
        return value in arg
    if op == "$ne":
        return bool(value != arg)
    if value is None:
        return False
    return {
        "$gte": lambda: value >= arg,
        "$gt": lambda: value > arg,
        "$lte": lambda: value <= arg,
        "$lt": lambda: value < arg,
    }[op]()


def _matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    for key, wanted in query.items():
        if key == "$or":
            if not any(_matches(doc, branch) for branch in wanted):
                return False
            continue
        value = _value(doc, key)
        if isinstance(wanted, dict):
            if not all(_compares(value, op, arg) for op, arg in wanted.items()):
                return False
        elif value != wanted:
            return False
    return True


class FakeCursor:
    def __init__(self, docs: list[dict[str, Any]], sorts: list[tuple[str, int]]) -> None:
        self.docs = docs
        self.sorts = sorts

    def sort(self, key: Any, direction: int = 1) -> FakeCursor:
        keys = key if isinstance(key, list) else [(key, direction)]
        self.sorts.extend(keys)
        for name, way in reversed(keys):
            present = [d for d in self.docs if d.get(name) is not None]
            absent = [d for d in self.docs if d.get(name) is None]
            present.sort(key=lambda d: d[name], reverse=way < 0)
            self.docs = present + absent
        return self

    def limit(self, n: int) -> FakeCursor:
        self.docs = self.docs[:n]
        return self

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        for doc in self.docs:
            yield dict(doc)


class FakeCollection:
    def __init__(self, *docs: dict[str, Any]) -> None:
        self.docs: dict[str, dict[str, Any]] = {d["_id"]: d for d in docs}
        self.queries: list[dict[str, Any]] = []
        self.finds: list[tuple[dict[str, Any], list[tuple[str, int]]]] = []  # and sorts

    def add(self, doc: dict[str, Any]) -> None:
        self.docs[doc["_id"]] = doc

    def remove(self, key: str) -> None:
        self.docs.pop(key, None)

    def find(self, query: dict[str, Any] | None = None, *_: Any) -> FakeCursor:
        self.queries.append(query or {})
        found = [d for d in self.docs.values() if _matches(d, query or {})]
        self.finds.append((query or {}, []))
        return FakeCursor(found, self.finds[-1][1])

    async def find_one(self, query: dict[str, Any], *_: Any) -> dict[str, Any] | None:
        self.queries.append(query)
        return next((dict(d) for d in self.docs.values() if _matches(d, query)), None)

    async def count_documents(self, query: dict[str, Any]) -> int:
        return sum(1 for d in self.docs.values() if _matches(d, query))


_ids = itertools.count(1)


def progress_doc(owner: str = "alice", **fields: Any) -> dict[str, Any]:
    """A stored progress document (an import job unless `kind` says otherwise)."""
    n = next(_ids)
    now = datetime.now(UTC)
    return {
        "_id": f"job{n}",
        "kind": "import.edi",
        "owner": owner,
        "title": f"Import {n}",
        "status": "running",
        "created_at": now - timedelta(minutes=10),
        "updated_at": now - timedelta(seconds=n),
        "seq": 1,
        **fields,
    }


def task_doc(
    owner: str = "alice", step_status: str = "processing", **fields: Any
) -> dict[str, Any]:
    status = {"completed": "completed", "cancelled": "cancelled"}.get(step_status, "running")
    if step_status.startswith("failed"):
        status = "failed"
    return progress_doc(
        owner, kind="colis.create", status=status, step_status=step_status, **fields
    )


class FakeUsers:
    def __init__(self, *users: User) -> None:
        self.users = {u.username: u for u in users}
        self.passwords = {u.username: "secret-" + u.username for u in users}
        self.revoked: list[tuple[str, str]] = []
        self.reads = 0

    async def get(self, username: str) -> User | None:
        self.reads += 1
        return self.users.get(username)

    async def authenticate(self, username: str, password: str) -> User | None:
        user = self.users.get(username)
        return user if user and self.passwords[username] == password else None

    async def revoke(self, username: str, token_id: str, expires_at: datetime) -> None:
        self.revoked.append((username, token_id))
        user = self.users[username]
        self.users[username] = User(
            user.username, user.role, revoked_tokens=user.revoked_tokens | {token_id}
        )


Answer = Callable[[str, dict[str, Any]], Any]


class FakeRpc:
    """The services, as the gateway's request/reply client sees them."""

    def __init__(self, deadline_s: float = 2.0) -> None:
        self.deadline_s = deadline_s
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.deadlines: list[float] = []  # each request's, in the order asked
        self.answer: Answer = lambda routing_key, body: {"ok": True, "result": None}

    async def call(self, body: bytes, routing_key: str, deadline_s: float, **_: Any) -> bytes:
        request = orjson.loads(body)
        self.asked.append((routing_key, request))
        self.deadlines.append(deadline_s)
        reply = self.answer(routing_key, request)
        if isinstance(reply, BaseException):
            raise reply
        return orjson.dumps(reply)

    async def round_trip_works(self, timeout_s: float) -> bool:
        return True

    def asked_about(self, *words: str) -> bool:
        """Some request mentions every word (a method, an id): loose on purpose, so the
        test does not fix the request's shape, only what it is about."""
        return any(
            all(w in orjson.dumps(request).decode() for w in words) for _, request in self.asked
        )


class FakePublisher:
    def __init__(self, sent: list[Any], refuse: list[bool]) -> None:
        self.sent = sent
        self.refuse = refuse

    async def publish(self, message: Any, **_: Any) -> None:
        if self.refuse and self.refuse[0]:
            raise ConnectionError("broker away")
        self.sent.append(message)


@dataclass
class Gateway:
    app: FastAPI
    settings: GatewaySettings
    progress: FakeCollection
    lists: FakeCollection  # progress-svc's list entries (progress_lists)
    users: FakeUsers
    rpc: FakeRpc
    hub: Hub
    sessions: SessionWatch
    published: list[Any] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    refuse: list[bool] = field(default_factory=lambda: [False])
    buckets: Any = field(default_factory=memory_buckets)  # colis-svc's, in memory
    handovers: Any = None  # PhotoHandovers, on the in-memory buckets

    async def photos_handed_over(self) -> None:
        """The form's photos are handed over after the answer: wait for them."""
        assert await self.handovers.drain(timeout_s=10)

    def add_job(self, owner: str = "alice", **fields: Any) -> dict[str, Any]:
        return self.store(progress_doc(owner, **fields))

    def add_task(
        self, owner: str = "alice", step_status: str = "processing", **fields: Any
    ) -> dict[str, Any]:
        return self.store(task_doc(owner, step_status, **fields))

    def store(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A document as progress-svc writes it: with its list entries."""
        self.progress.add(doc)
        for key in list_keys(doc):
            self.lists.add({"_id": key})
        return doc

    def token(self, username: str = "alice") -> str:
        user = self.users.users[username]
        return create_access_token(username, user.role.value, SECRET, 600)

    def auth(self, username: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://gateway"
        )


@pytest.fixture
def gw(tmp_path: Any) -> Gateway:
    settings = GatewaySettings(jwt_secret=SECRET, data_dir=tmp_path)
    app = create_app(settings)
    users = FakeUsers(User("alice", Role.AGENT), User("bob", Role.AGENT), User("root", Role.ADMIN))
    progress, lists = FakeCollection(), FakeCollection()
    rpc = FakeRpc()
    hub = Hub()
    sessions = SessionWatch(users, 3600)  # type: ignore[arg-type]
    gateway = Gateway(app, settings, progress, lists, users, rpc, hub, sessions)
    publishers = {
        message_type(m): FakePublisher(gateway.published, gateway.refuse) for m in COMMANDS
    }
    gateway.handovers = PhotoHandovers(UploadStore(tmp_path), gateway.buckets, publishers)  # type: ignore[arg-type]
    app.state.gateway = GatewayState(
        settings=settings,
        mongo=None,  # type: ignore[arg-type]
        users=users,  # type: ignore[arg-type]
        view=ProgressView(progress, lists),  # type: ignore[arg-type]
        hub=hub,
        publishers=publishers,  # type: ignore[arg-type]
        broker=None,  # type: ignore[arg-type]
        rpc=rpc,  # type: ignore[arg-type]
        sessions=sessions,
        buckets=gateway.buckets,
        handovers=gateway.handovers,
        notifications=None,  # type: ignore[arg-type]
        productivity=None,  # type: ignore[arg-type]
    )
    return gateway
