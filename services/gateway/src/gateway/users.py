"""The gateway's users: who may log in, and with which role."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from time import monotonic
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, DuplicateKeyError, ServerSelectionTimeoutError

from gateway.security import PasswordWorkers, TokenClaims, hash_password, verify_password
from jauge_shared.contracts import utc_now

# revoked sessions a user document keeps (the oldest go first; each also expires)
MAX_REVOKED = 100
# after the store failed to answer, how long the others are refused without asking it
STORE_AWAY_RECHECK_S = 1.0
MAX_CACHED_USERS = 10_000


class Role(StrEnum):
    AGENT = "agent"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    disabled: bool = False
    created_at: datetime | None = None
    # ids of this user's tokens revoked by a logout, until they expire anyway
    revoked_tokens: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def may_see(self, owner: str | None) -> bool:
        return self.is_admin or (owner is not None and owner == self.username)


def still_valid(user: User | None, claims: TokenClaims) -> bool:
    """A session goes on while its user exists, is enabled and has not revoked it."""
    return (
        user is not None
        and not user.disabled
        and not (claims.token_id and claims.token_id in user.revoked_tokens)
    )


class UserExistsError(Exception):
    pass


class UserRepository:
    cache_s: float = 0.0

    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        database: str,
        workers: PasswordWorkers | None = None,
        cache_s: float = 0.0,
    ) -> None:
        self.collection = client[database]["users"]
        self.store_away_until = 0.0
        self._answered_from = 0.0  # when the latest read the store answered was sent
        self.workers = workers
        # users read lately (`user_cache_s`): every authenticated request read its user
        # from the store, and under load the store's answer was much of the request's
        # wait (issue 18, item 1). A change made here (logout, disable, new password)
        # forgets the user at once; one made by another replica or the CLI is seen
        # within `cache_s`.
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, User]] = {}
        self._reading: dict[str, asyncio.Future[User | None]] = {}
        self._epoch = 0  # forgets so far: a read that saw one is not kept

    async def _verify(self, password: str, hashed: str) -> bool:
        if self.workers is None:  # the CLI: one check, nothing else waits on the loop
            return verify_password(password, hashed)
        return await self.workers.verify(password, hashed)

    async def add(self, username: str, password: str, role: Role) -> User:
        now = utc_now()
        try:
            await self.collection.insert_one(
                {
                    "_id": username,
                    "password_hash": hash_password(password),
                    "role": role.value,
                    "disabled": False,
                    "created_at": now,
                }
            )
        except DuplicateKeyError as e:
            raise UserExistsError(username) from e
        return User(username, role, created_at=now)

    async def set_password(self, username: str, password: str) -> bool:
        self.forget(username)
        result = await self.collection.update_one(
            {"_id": username},
            {"$set": {"password_hash": hash_password(password), "disabled": False}},
        )
        return result.matched_count == 1

    async def get(self, username: str) -> User | None:
        """Every authenticated request's first read. With the store away, one caller a
        second asks the driver and the others get the same 503 at once: many server
        selections timing out together broke the driver's topology lock (PyMongo
        4.20 on Python 3.11: "Lock is not acquired", then every later request hung)."""
        now = monotonic()
        if self.cache_s <= 0:
            return await self._read(username, now)
        cached = self._cache.get(username)
        if cached is not None and cached[0] > now:
            return cached[1]
        # one read for every request of this user arriving while it is on its way: under
        # load the store's answer can take longer than `cache_s` itself
        reading = self._reading.get(username)
        if reading is None:
            reading = asyncio.ensure_future(self._read_and_keep(username, now))
            self._reading[username] = reading
            reading.add_done_callback(lambda done: self._done_reading(username, done))
        return await asyncio.shield(reading)

    async def _read(self, username: str, now: float) -> User | None:
        if self.store_away_until > now:
            raise ServerSelectionTimeoutError("the store did not answer a moment ago")
        started = monotonic()
        try:
            doc = await self.collection.find_one({"_id": username})
        except ConnectionFailure:
            # only if nothing has answered since this read began: a read sent into a
            # hang fails after it has healed, and must not refuse the reads that follow
            # (a second of 503 after the heal, the store hang test under load)
            if started >= self._answered_from:
                self.store_away_until = monotonic() + STORE_AWAY_RECHECK_S
            raise
        self._answered_from = max(self._answered_from, started)
        self.store_away_until = 0.0
        return _user(doc) if doc else None

    async def _read_and_keep(self, username: str, now: float) -> User | None:
        epoch = self._epoch
        user = await self._read(username, now)
        if user is not None and epoch == self._epoch:  # nothing forgotten meanwhile
            kept_until = monotonic() + self.cache_s  # from the answer, not the question
            if len(self._cache) >= MAX_CACHED_USERS:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            self._cache[username] = (kept_until, user)
        return user

    def _done_reading(self, username: str, done: asyncio.Future[User | None]) -> None:
        if self._reading.get(username) is done:
            del self._reading[username]
        if not done.cancelled():
            done.exception()  # each caller got it; not "never retrieved" if none waits

    def forget(self, username: str) -> None:
        """A change to this user: the next request reads it afresh (a read on its way
        now is neither kept nor joined)."""
        if self.cache_s > 0:
            self._epoch += 1
            self._cache.pop(username, None)
            self._reading.pop(username, None)

    async def authenticate(self, username: str, password: str) -> User | None:
        doc = await self.collection.find_one({"_id": username})
        if doc is None:
            await self._verify(password, _DUMMY_HASH)  # same cost whether or not the user exists
            return None
        if doc.get("disabled") or not await self._verify(password, doc["password_hash"]):
            return None
        return _user(doc)

    async def revoke(self, username: str, token_id: str, expires_at: datetime) -> None:
        """Refuse one token from now on (a logout), until it would have expired anyway.

        Read, then written whole (plain `$set`: FerretDB ignores `$push`'s `$slice`); two
        logouts of one user at the same instant may keep only one, the other token
        then simply lives until it expires.
        """
        doc = await self.collection.find_one({"_id": username}, {"revoked_tokens": 1})
        if doc is None:
            return
        now = utc_now()
        kept = [
            r
            for r in doc.get("revoked_tokens") or ()
            if _aware(r.get("exp")) > now and r.get("jti") != token_id
        ]
        kept = [*kept, {"jti": token_id, "exp": expires_at}][-MAX_REVOKED:]
        self.forget(username)
        try:
            await self.collection.update_one({"_id": username}, {"$set": {"revoked_tokens": kept}})
        finally:
            self.forget(username)  # a read racing the write is not kept either

    async def list(self) -> list[User]:
        return [_user(doc) async for doc in self.collection.find().sort("_id", 1)]

    async def disable(self, username: str) -> bool:
        self.forget(username)
        try:
            result = await self.collection.update_one(
                {"_id": username}, {"$set": {"disabled": True}}
            )
        finally:
            self.forget(username)
        return result.matched_count == 1


def _aware(value: Any) -> datetime:
    if not isinstance(value, datetime):
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_DUMMY_HASH = hash_password("not a real password")


def _user(doc: dict[str, Any]) -> User:
    return User(
        doc["_id"],
        Role(doc["role"]),
        bool(doc.get("disabled")),
        doc.get("created_at"),
        frozenset(str(r.get("jti")) for r in doc.get("revoked_tokens") or ()),
    )
