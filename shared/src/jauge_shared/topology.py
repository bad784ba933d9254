"""Exchange, queue and routing-key names: the broker's layout, in one place.

Each durable queue is `<service>.<purpose>` and has a dead-letter queue `<name>.dlq`
reached through the default exchange, so a rejected or poisoned message is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

from jauge_shared import contracts
from jauge_shared.contracts import message_type
from jauge_shared.contracts.envelope import JOB_ID_HEADER
from jauge_shared.settings import QueueType as SettingsQueueType

if TYPE_CHECKING:
    from faststream.rabbit.schemas.queue import ClassicQueueArgs, QuorumQueueArgs

COMMANDS_EXCHANGE = RabbitExchange("jauge.commands", type=ExchangeType.TOPIC, durable=True)
EVENTS_EXCHANGE = RabbitExchange("jauge.events", type=ExchangeType.TOPIC, durable=True)

# events that carry a job's progress are partitioned by job id (docs/decisions.md,
# "Partitioned progress"): the broker's consistent-hash exchange hashes the header
# every message carries (`Message.amqp_properties`)
PROGRESS_HASH_EXCHANGE = RabbitExchange(
    "jauge.progress",
    type=ExchangeType.X_CONSISTENT_HASH,
    durable=True,
    arguments={"hash-header": JOB_ID_HEADER},
)

DLQ_SUFFIX = ".dlq"
DEAD_LETTER_REASON_HEADER = "x-jauge-dead-letter-reason"
DEAD_LETTER_QUEUE_HEADER = "x-jauge-original-queue"
DEAD_LETTER_ROUTING_KEY_HEADER = "x-jauge-original-routing-key"


class RK:
    """Routing keys. Commands are imperative, events are in the past tense.

    Each message's key is its model's `type` (`message_type`), read from the model
    rather than written again here, so the two cannot drift apart; the request/reply
    keys are not messages of their own (their bodies are `ColisRpcRequest` and
    `ImportRpcRequest`). shared/tests/test_shared_topology.py checks that every model
    has its constant and that every binding names a model or an RPC key.
    """

    IMPORT_REQUEST = message_type(contracts.RequestImport)
    IMPORT_ANNOUNCE = message_type(contracts.AnnounceImport)
    IMPORT_CANCEL = message_type(contracts.CancelImport)
    IMPORT_FILE = message_type(contracts.ImportFile)
    IMPORT_QUEUED = message_type(contracts.ImportQueued)
    IMPORT_STARTED = message_type(contracts.ImportStarted)
    IMPORT_CLEANUP_STARTED = message_type(contracts.ImportCleanupStarted)
    FILE_IMPORTED = message_type(contracts.FileImported)
    IMPORT_FINISHED = message_type(contracts.ImportFinished)
    COLIS_CREATE = message_type(contracts.CreateColis)
    COLIS_UPDATE = message_type(contracts.UpdateColis)
    COLIS_RETRY = message_type(contracts.RetryColisTask)
    COLIS_CANCEL = message_type(contracts.CancelColisTask)
    COLIS_ANNOUNCE = message_type(contracts.AnnounceColisTask)
    COLIS_PHOTO_READY = message_type(contracts.PhotoReady)
    COLIS_STEP_CHANGED = message_type(contracts.ColisStepChanged)
    COLIS_CREATED = message_type(contracts.ColisCreated)
    COLIS_UPDATED = message_type(contracts.ColisUpdated)
    COLIS_TASK_STALLED = message_type(contracts.ColisTaskStalled)
    LOT_CREATED = message_type(contracts.LotCreated)
    NOTIFICATION_REQUESTED = message_type(contracts.NotificationRequested)
    PROGRESS_UPDATED = message_type(contracts.ProgressUpdated)
    # request/reply reads (not messages of ALL_MESSAGES)
    COLIS_RPC = "rpc.colis"
    IMPORT_RPC = "rpc.import"


# the routing keys that carry a request/reply read rather than a message model
RPC_ROUTING_KEYS = frozenset({RK.COLIS_RPC, RK.IMPORT_RPC})


@dataclass(frozen=True)
class QueueSpec:
    """A durable work queue, where it is bound, and its dead-letter queue."""

    name: str
    exchange: RabbitExchange
    routing_keys: tuple[str, ...]
    single_active_consumer: bool = False
    # a partition: `exchange` is a consistent-hash exchange, bound to jauge.events with
    # `routing_keys`; the queue is bound to it with this weight as its binding key
    hash_weight: int | None = None

    @property
    def routed_from(self) -> RabbitExchange:
        """The exchange its messages are published to (a partition's go through the
        consistent-hash exchange, bound to jauge.events)."""
        return EVENTS_EXCHANGE if self.hash_weight is not None else self.exchange

    @property
    def dlq_name(self) -> str:
        return self.name + DLQ_SUFFIX

    def queue(self, queue_type: SettingsQueueType, delivery_limit: int) -> RabbitQueue:
        arguments: dict[str, Any] = {
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.dlq_name,
        }
        if self.single_active_consumer:
            arguments["x-single-active-consumer"] = True
        if queue_type is SettingsQueueType.QUORUM:
            arguments["x-delivery-limit"] = delivery_limit
            return RabbitQueue(
                self.name,
                queue_type=QueueType.QUORUM,
                arguments=cast("QuorumQueueArgs", arguments),
                routing_key=self.routing_keys[0],
            )
        return RabbitQueue(
            self.name,
            durable=True,
            arguments=cast("ClassicQueueArgs", arguments),
            routing_key=self.routing_keys[0],
        )

    def dead_letter_queue(self, queue_type: SettingsQueueType) -> RabbitQueue:
        if queue_type is SettingsQueueType.QUORUM:
            return RabbitQueue(self.dlq_name, queue_type=QueueType.QUORUM)
        return RabbitQueue(self.dlq_name, durable=True)


IMPORT_REQUESTS = QueueSpec(
    "import-svc.requests",
    COMMANDS_EXCHANGE,
    (RK.IMPORT_REQUEST, RK.IMPORT_ANNOUNCE, RK.IMPORT_CANCEL),
)
IMPORT_FILES = QueueSpec("import-svc.files", COMMANDS_EXCHANGE, (RK.IMPORT_FILE,))
# reads the gateway asks of import-svc (report, invoices): request/reply, any replica
IMPORT_RPC = QueueSpec("import-svc.rpc", COMMANDS_EXCHANGE, (RK.IMPORT_RPC,))
COLIS_TASKS = QueueSpec("colis-svc.tasks", COMMANDS_EXCHANGE, (RK.COLIS_CREATE, RK.COLIS_UPDATE))
# the same commands, for the task's first gauge (seq 0) at once: a quick handler that
# stores the task and announces it, never behind the pipeline's busy workers
COLIS_ACCEPTED = QueueSpec(
    "colis-svc.accepted", COMMANDS_EXCHANGE, (RK.COLIS_CREATE, RK.COLIS_UPDATE)
)
COLIS_CONTROL = QueueSpec(
    "colis-svc.control",
    COMMANDS_EXCHANGE,
    (RK.COLIS_RETRY, RK.COLIS_CANCEL, RK.COLIS_PHOTO_READY, RK.COLIS_ANNOUNCE),
)
COLIS_RPC = QueueSpec("colis-svc.rpc", COMMANDS_EXCHANGE, (RK.COLIS_RPC,))
PROGRESS_ROUTING_KEYS = (
    RK.IMPORT_QUEUED,
    RK.IMPORT_STARTED,
    RK.IMPORT_CLEANUP_STARTED,
    RK.FILE_IMPORTED,
    RK.IMPORT_FINISHED,
    RK.COLIS_STEP_CHANGED,
)
# the queue of the deployments before partitioning (one partition, bound to
# jauge.events directly); its name is the prefix of the partitions' names
PROGRESS_EVENTS = QueueSpec(
    "progress-svc.events",
    EVENTS_EXCHANGE,
    PROGRESS_ROUTING_KEYS,
    # progress-svc is the single writer of the read model (see docs/decisions.md):
    # extra replicas stand by and take over at once if the active one dies
    single_active_consumer=True,
)
# one partition is the queue above, as before partitioning (docs/operations.md)
DEFAULT_PROGRESS_PARTITIONS = 1


def progress_partition(index: int) -> QueueSpec:
    """Partition `index` of progress-svc's events: `progress-svc.events.<index>`.

    Bound to the consistent-hash exchange with weight 1, so partitions share the job
    ids evenly; single active consumer, so each partition (and each job in it) has one
    writer and its order, while the partitions are applied in parallel.
    """
    return QueueSpec(
        f"{PROGRESS_EVENTS.name}.{index}",
        PROGRESS_HASH_EXCHANGE,
        PROGRESS_ROUTING_KEYS,
        single_active_consumer=True,
        hash_weight=1,
    )


def progress_partitions(count: int) -> tuple[QueueSpec, ...]:
    """One: the single queue `progress-svc.events`, bound to jauge.events directly."""
    if count == 1:
        return (PROGRESS_EVENTS,)
    return tuple(progress_partition(index) for index in range(count))


def queues_of(service: str, progress_partitions_count: int) -> tuple[QueueSpec, ...]:
    """What `service` declares and consumes, progress-svc's partitions counted."""
    if service == "progress-svc":
        return progress_partitions(progress_partitions_count)
    return QUEUES_BY_SERVICE[service]


# the gateway's own read models of events (docs/notifications.md): what an agent is told
# (a parcel's notification, a task or an import that failed) and the productivity
# counters. Durable and shared by the replicas, so nothing is missed while one restarts;
# single active consumer, so each read model has one writer at a time (a FerretDB
# built without the project's atomic-writes patch does not isolate updates).
GATEWAY_NOTIFICATIONS = QueueSpec(
    "gateway.notifications",
    EVENTS_EXCHANGE,
    (RK.NOTIFICATION_REQUESTED, RK.PROGRESS_UPDATED),
    single_active_consumer=True,
)
GATEWAY_PRODUCTIVITY = QueueSpec(
    "gateway.productivity", EVENTS_EXCHANGE, (RK.COLIS_STEP_CHANGED,), single_active_consumer=True
)

QUEUES_BY_SERVICE: dict[str, tuple[QueueSpec, ...]] = {
    "import-svc": (IMPORT_REQUESTS, IMPORT_FILES, IMPORT_RPC),
    "colis-svc": (COLIS_TASKS, COLIS_ACCEPTED, COLIS_CONTROL, COLIS_RPC),
    "progress-svc": progress_partitions(DEFAULT_PROGRESS_PARTITIONS),
    "gateway": (GATEWAY_NOTIFICATIONS, GATEWAY_PRODUCTIVITY),
}
ALL_QUEUES: tuple[QueueSpec, ...] = tuple(q for qs in QUEUES_BY_SERVICE.values() for q in qs)


def gateway_progress_queue(replica: str) -> RabbitQueue:
    """Each gateway replica's own queue: exclusive, gone when the replica is."""
    return RabbitQueue(
        f"gateway.progress.{replica}",
        exclusive=True,
        auto_delete=True,
        durable=False,
        routing_key=RK.PROGRESS_UPDATED,
    )


def gateway_notices_queue(replica: str) -> RabbitQueue:
    """Each gateway replica's own queue of notification.requested: every replica pushes
    them to its own sockets (the durable `gateway.notifications` only keeps them, on
    one replica: its single active consumer)."""
    return RabbitQueue(
        f"gateway.notices.{replica}",
        exclusive=True,
        auto_delete=True,
        durable=False,
        routing_key=RK.NOTIFICATION_REQUESTED,
    )
