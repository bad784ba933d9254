from __future__ import annotations

from pydantic import Field, PositiveFloat, PositiveInt

from jauge_shared.contracts.progress import PROGRESS_DB_SUFFIX
from jauge_shared.settings import ServiceSettings
from jauge_shared.topology import DEFAULT_PROGRESS_PARTITIONS

SERVICE = "progress-svc"
DB_SUFFIX = PROGRESS_DB_SUFFIX


class ProgressSettings(ServiceSettings):
    port: int = Field(default=8103, ge=1, le=65535, description="/healthz, /readyz, /metrics.")
    prefetch: PositiveInt = Field(
        default=16384,
        description=(
            "Unacked events in flight: the more, the bigger each job's batch, so the fewer "
            "writes (events are small; they stay in the broker until acked). With a "
            "thousand busy jobs, 16,384 applied 1,550 events/s where 2,048 applied 1,050 "
            "(docs/performance.md)."
        ),
    )
    progress_partitions: PositiveInt = Field(
        default=DEFAULT_PROGRESS_PARTITIONS,
        le=64,
        description=(
            "Queues `progress-svc.events.<n>` the events are spread over by job id (the "
            "broker's consistent-hash exchange); each has one active replica at a time. "
            "The same value on every replica; more partitions than replicas lets the "
            "load be shared (docs/operations.md, changing it)."
        ),
    )
    rebalance_interval_s: PositiveFloat = Field(
        default=5.0,
        description=(
            "How often a replica checks that it is not the active consumer of more than "
            "its share of the partitions (and steps back from one if it is)."
        ),
    )
    recent_limit: PositiveInt = Field(default=20, description="Latest item results kept per job.")
    errors_limit: PositiveInt = Field(default=200, description="Item errors kept per job.")
    concurrent_writes: PositiveInt = Field(
        default=1024,
        description=(
            "Progress documents being written at once. Their writes go to the store "
            "together, one bulk write per group (docs/performance.md, round three); a "
            "job's next events wait for its write and go into its next batch."
        ),
    )
    reconcile_interval_s: PositiveFloat = Field(
        default=10.0, description="How often the reconciler looks for gauges that stopped."
    )
    reconcile_after_s: PositiveFloat = Field(
        default=30.0,
        description=(
            "A gauge still open that has not moved for this long has its owner asked to "
            "announce its state again (then at most once per this period)."
        ),
    )
