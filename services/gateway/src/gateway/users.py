"""The gateway's users: who may log in, and with which role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from gateway.security import hash_password, verify_password
from jauge_shared.contracts import utc_now


class Role(StrEnum):
    AGENT = "agent"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    disabled: bool = False
    created_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def may_see(self, owner: str | None) -> bool:
        return self.is_admin or (owner is not None and owner == self.username)


class UserExistsError(Exception):
    pass


class UserRepository:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self.collection = client[database]["users"]

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
        result = await self.collection.update_one(
            {"_id": username},
            {"$set": {"password_hash": hash_password(password), "disabled": False}},
        )
        return result.matched_count == 1

    async def get(self, username: str) -> User | None:
        doc = await self.collection.find_one({"_id": username})
        return _user(doc) if doc else None

    async def authenticate(self, username: str, password: str) -> User | None:
        doc = await self.collection.find_one({"_id": username})
        if doc is None:
            verify_password(password, _DUMMY_HASH)  # same cost whether or not the user exists
            return None
        if doc.get("disabled") or not verify_password(password, doc["password_hash"]):
            return None
        return _user(doc)

    async def list(self) -> list[User]:
        return [_user(doc) async for doc in self.collection.find().sort("_id", 1)]

    async def disable(self, username: str) -> bool:
        result = await self.collection.update_one({"_id": username}, {"$set": {"disabled": True}})
        return result.matched_count == 1


_DUMMY_HASH = hash_password("not a real password")


def _user(doc: dict[str, Any]) -> User:
    return User(doc["_id"], Role(doc["role"]), bool(doc.get("disabled")), doc.get("created_at"))
