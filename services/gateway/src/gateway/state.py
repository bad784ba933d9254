"""What the gateway opens at start-up and its routes share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faststream.rabbit import RabbitBroker
from faststream.rabbit.publisher import RabbitPublisher
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from gateway.durations import RecentDurations
from gateway.hub import Hub
from gateway.recent import RecentJobs
from gateway.sessions import SessionWatch
from gateway.settings import GatewaySettings
from gateway.users import UserRepository

if TYPE_CHECKING:  # rpc needs the state, the state only names the client
    from gateway.rpc import RpcClient


@dataclass
class GatewayState:
    settings: GatewaySettings
    mongo: AsyncMongoClient[dict[str, Any]]
    users: UserRepository
    progress: AsyncCollection[dict[str, Any]]
    hub: Hub
    recent: RecentJobs
    durations: RecentDurations
    publishers: dict[str, RabbitPublisher]
    broker: RabbitBroker
    rpc: RpcClient
    sessions: SessionWatch
