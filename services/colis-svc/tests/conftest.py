"""colis-svc's service and sweeper on the real store, without the broker: what they
publish is collected in lists instead (the `world` of every test here)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from colis_svc.files import FileStore
from colis_svc.repository import ColisRepository
from colis_svc.service import ColisService
from colis_svc.settings import ColisSettings
from colis_svc.sweeper import Sweeper
from jauge_shared.blobs import PHOTO_UPLOADS, PHOTOS, Blobs
from jauge_shared.contracts import (
    ColisData,
    ColisRpcRequest,
    ColisStepChanged,
    CreateColis,
    Message,
)

DATA = ColisData.model_validate(
    {
        "client_id": "cli-demo-1",
        "type_transport": "cargo",
        "longueur": "50",
        "largeur": "40",
        "hauteur": "30",
        "poids": "7.5",
    }
)


class World:
    def __init__(self, service: ColisService, repo: ColisRepository, settings: ColisSettings):
        self.service = service
        self.repo = repo
        self.settings = settings
        self.events: list[Message] = []
        self.commands: list[Message] = []
        self.sweeper = Sweeper(
            repo, service.tasks, service.control, settings, self.emit, self.republish
        )
        self.data = DATA

    async def emit(self, message: Message) -> None:
        self.events.append(message)

    async def republish(self, message: Message) -> None:
        self.commands.append(message)

    def steps(self, task_id: str) -> list[str]:
        return [
            e.status.value
            for e in self.events
            if isinstance(e, ColisStepChanged) and e.task_id == task_id
        ]

    async def rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """colis-svc's reply to the gateway's request, as it goes on the wire."""
        return await self.service.queries.rpc(ColisRpcRequest(method=method, params=params))

    async def ask(self, method: str, **params: Any) -> Any:
        """The result of a typed request (an RpcError raised as is)."""
        return await self.service.queries.answer(
            ColisRpcRequest(method=method, params=params).query()
        )

    async def lot(self) -> str:
        return str((await self.ask("create_lot", type_lot="cargo"))["id"])

    def create(
        self, task_id: str, lot_id: str, data: ColisData = DATA, **extra: Any
    ) -> CreateColis:
        return CreateColis(
            producer="test",
            job_id=task_id,
            task_id=task_id,
            user_id="alice",
            lot_id=lot_id,
            colis_data=data,
            **extra,
        )


@pytest.fixture
async def world(test_env, tmp_path: Path):
    settings = ColisSettings(
        mongo_url=test_env.mongo_url,
        db_prefix=test_env.db_prefix,
        data_dir=tmp_path,
        task_retry_base_s=0.01,
        task_retry_max_s=0.02,
        task_time_limit_s=60,
    )
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    repo = ColisRepository(client, f"{test_env.db_prefix}_colis")
    await repo.ensure_indexes()
    await repo.seed_demo_data(datetime.now(UTC))
    db = client[f"{test_env.db_prefix}_colis"]
    files = FileStore(Blobs(db, PHOTO_UPLOADS), Blobs(db, PHOTOS))
    holder: list[World] = []

    async def emit(message: Message) -> None:
        await holder[0].emit(message)

    service = ColisService.build(repo, files, emit, settings)
    holder.append(World(service, repo, settings))
    yield holder[0]
    await client.close()
