"""What the gateway opens at start-up, held on `app.state.gateway` for `deps.py`: routes
never take it whole, each asks for the one part it uses (`SettingsDep`, `ViewDep`...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faststream.rabbit import RabbitBroker
from pymongo import AsyncMongoClient

from gateway.commands import Publishers
from gateway.handover import Buckets
from gateway.hub import Hub
from gateway.notifications import NotificationStore
from gateway.photo_handovers import PhotoHandovers
from gateway.productivity import Productivity
from gateway.progress_view import ProgressView
from gateway.rpc import RpcClient
from gateway.sessions import SessionWatch
from gateway.settings import GatewaySettings
from gateway.users import UserRepository


@dataclass
class GatewayState:
    settings: GatewaySettings
    mongo: AsyncMongoClient[dict[str, Any]]
    users: UserRepository
    view: ProgressView
    hub: Hub
    publishers: Publishers
    broker: RabbitBroker
    rpc: RpcClient
    sessions: SessionWatch
    buckets: Buckets
    handovers: PhotoHandovers
    notifications: NotificationStore
    productivity: Productivity
