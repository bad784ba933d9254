from __future__ import annotations

from pydantic import Field, PositiveFloat, PositiveInt, SecretStr

from jauge_shared.contracts.progress import PROGRESS_DB_SUFFIX as PROGRESS_DB_SUFFIX
from jauge_shared.settings import ServiceSettings

SERVICE = "gateway"
DB_SUFFIX = "gateway"


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
    user_cache_s: float = Field(
        default=0.0,
        ge=0,
        description="A signed-in user read from the store is used this long by later "
        "requests without reading it again (0: read for every request). A logout or a "
        "disable made through this process applies at once, through another replica or "
        "the CLI within this delay. Off by default: with it on, a store outage let "
        "requests through to colis-svc, whose reads then waited out the request's "
        "deadline (a 504 after 20 s) instead of the gateway's 503 at once.",
    )
    lot_check_cache_s: float = Field(
        default=2.0,
        ge=0,
        description="A lot colis-svc said was open is taken as open this long by the parcel "
        "form, without asking again (0: ask every time). A lot closed meanwhile through "
        "another replica still refuses the parcel, in its task rather than at the form.",
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
    report_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="An import's per-file report awaited from import-svc: a big import's "
        "takes the store longer than other replies (5,000 files: about 2 s on an idle store).",
    )
    login_attempts: PositiveInt = Field(
        default=10, description="Failed logins per user and address…"
    )
    login_window_s: PositiveInt = Field(default=300, description="…within this many seconds.")
    login_account_attempts: PositiveInt = Field(
        default=50, description="Failed logins per account, from every address, in the window."
    )
    login_client_attempts: PositiveInt = Field(
        default=100, description="Failed logins per address, for every account, in the window."
    )
    login_tracked_keys: PositiveInt = Field(
        default=100_000, description="Keys the login limiter remembers (oldest forgotten)."
    )
    password_hash_concurrency: PositiveInt = Field(
        default=2, description="Password checks (argon2) run at once, in threads."
    )
    password_hash_queue: PositiveInt = Field(
        default=64, description="Password checks waiting their turn; beyond, a login gets a 503."
    )
    trusted_proxies: str = Field(
        default="",
        description="Addresses whose X-Forwarded-For / X-Forwarded-Proto are believed "
        "(comma-separated, `*` for any); empty: the client address is the socket's.",
    )
    allowed_origins: str = Field(
        default="",
        description="Extra origins allowed to open /ws (comma-separated); the gateway's "
        "own origin always is.",
    )
    session_check_s: float = Field(
        default=15.0,
        gt=0,
        description="How often open WebSocket and SSE sessions are checked (logout, "
        "disabled user, expired token).",
    )
    max_upload_bytes: PositiveInt = Field(
        default=64 * 1024 * 1024, description="Largest file of an import upload."
    )
    max_upload_request_bytes: PositiveInt = Field(
        default=256 * 1024 * 1024,
        description="Largest import upload request (all its files together).",
    )
    upload_quota_user_bytes: PositiveInt = Field(
        default=512 * 1024 * 1024,
        description="Upload bytes one agent may have in flight at once (all its requests).",
    )
    upload_quota_total_bytes: PositiveInt = Field(
        default=2 * 1024 * 1024 * 1024,
        description="Upload bytes in flight at once on this replica, all agents together.",
    )
    max_body_bytes: PositiveInt = Field(
        default=1024 * 1024,
        description="Largest request body outside the upload routes (JSON, forms).",
    )
    max_photo_bytes: PositiveInt = Field(
        default=15 * 1024 * 1024, description="Largest parcel photo accepted by the form."
    )
    photo_upload_age_s: PositiveFloat = Field(
        default=86400.0,
        description="The gateway's own leftovers of uploads, photos and import files "
        "(parts, notes, files never handed over), are removed after this.",
    )
    max_photo_pixels: PositiveInt = Field(
        default=40_000_000,
        description="Largest parcel photo in pixels, read from its header as it arrives "
        "(colis-svc's own limit).",
    )
