from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

from jauge_shared.contracts.colis import COLIS_DB_SUFFIX
from jauge_shared.settings import ServiceSettings

SERVICE = "colis-svc"
DB_SUFFIX = COLIS_DB_SUFFIX


class ColisSettings(ServiceSettings):
    port: int = Field(default=8102, ge=1, le=65535, description="/healthz, /readyz, /metrics.")
    task_concurrency: PositiveInt = Field(
        default=8,
        description="Parcel tasks one replica runs at once (more wait, prefetched): the "
        "store is the bottleneck, and reads (RPC) must stay quick meanwhile.",
    )
    max_retries: NonNegativeInt = Field(
        default=3, description="Automatic retries of a task after a transient failure."
    )
    task_retry_base_s: PositiveFloat = Field(
        default=30.0, description="First delay before a task that failed transiently reruns."
    )
    task_retry_max_s: PositiveFloat = Field(
        default=600.0, description="Longest delay between two automatic runs of a task."
    )
    task_time_limit_s: PositiveFloat = Field(
        default=600.0, description="A task active this long is stalled (its worker died)."
    )
    task_soft_time_limit_s: PositiveFloat = Field(
        default=480.0, description="A run still going after this long abandons its step."
    )
    sweeper_interval_s: PositiveFloat = Field(
        default=5.0, description="How often each replica looks for due retries and stalls."
    )
    finished_task_retention_s: PositiveFloat = Field(
        default=30 * 86400.0, description="Finished tasks older than this are removed."
    )
    orphan_upload_age_s: PositiveFloat = Field(
        default=86400.0, description="Uploads no live task refers to are removed after this."
    )
    photo_deadline_s: PositiveFloat = Field(
        default=900.0,
        description="A parcel task whose photo is still being sent (a slow link's "
        "background upload) waits this long in `image_uploading`, then fails; the agent "
        "retries it with a new photo.",
    )
    image_max_side: PositiveInt = Field(default=1600, description="Stored photos fit in this.")
    thumbnail_side: PositiveInt = Field(default=320)
    image_workers: PositiveInt = Field(
        default=1,
        description="Photos one replica processes at once. The image step is the "
        "pipeline's CPU-heavy part (decode, resize, encode): one at a time leaves the other "
        "cores to the answers agents wait for (the form, the dashboard). Raise it where "
        "colis-svc has cores of its own.",
    )
    test_hooks: bool = Field(
        default=False,
        description="Test only: load the test plug-in `tests/colis_test_hooks.py` (from the "
        "repository root), which obeys `[test:...]` directives in a parcel's description "
        "(`delay=0.5` pauses at each step; `fail=price_calculating:transient*1` makes the "
        "first run of that step fail that way). Never enable in production.",
    )
