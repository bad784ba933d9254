from __future__ import annotations

from pydantic import Field, PositiveInt, SecretStr

from jauge_shared.settings import ServiceSettings

SERVICE = "gateway"
DB_SUFFIX = "gateway"
PROGRESS_DB_SUFFIX = "progress"


class GatewaySettings(ServiceSettings):
    port: int = Field(default=8000, ge=1, le=65535)
    jwt_secret: SecretStr = Field(
        min_length=32, description="Signs access tokens; the same on every gateway replica."
    )
    token_ttl_s: PositiveInt = Field(default=1800, description="Access tokens expire after this.")
    cookie_secure: bool = Field(default=False, description="Session cookie only over HTTPS.")
    ws_queue_limit: PositiveInt = Field(
        default=256, description="Frames waiting for one socket before it counts as stalled."
    )
    ws_stall_timeout_s: float = Field(
        default=10.0, gt=0, description="A socket that accepts nothing this long is closed."
    )
    mongo_timeout_ms: PositiveInt = Field(
        default=3000,
        description="How long the driver looks for a server before giving up: a request "
        "answers 503 after this when the store is away.",
    )
    mongo_socket_timeout_ms: int | None = Field(
        gt=0,
        default=10_000,
        description="How long the driver waits for the store's answer on a connection: a "
        "request answers 503 rather than hang on a store that takes it and never answers.",
    )
    rpc_timeout_s: float = Field(default=5.0, gt=0, description="Replies awaited from services.")
    login_attempts: PositiveInt = Field(default=10, description="Login tries per user and address…")
    login_window_s: PositiveInt = Field(default=300, description="…within this many seconds.")
    max_upload_bytes: PositiveInt = Field(default=64 * 1024 * 1024)
    max_body_bytes: PositiveInt = Field(
        default=1024 * 1024,
        description="Largest request body other than a multipart upload (JSON, forms).",
    )
    max_photo_bytes: PositiveInt = Field(
        default=15 * 1024 * 1024, description="Largest parcel photo accepted by the form."
    )
