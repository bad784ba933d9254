"""Exchange, queue and routing-key names: the broker's layout, in one place.

Each durable queue is `<service>.<purpose>` and has a dead-letter queue `<name>.dlq`
reached through the default exchange, so a rejected or poisoned message is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

from jauge_shared.settings import QueueType as SettingsQueueType

if TYPE_CHECKING:
    from faststream.rabbit.schemas.queue import ClassicQueueArgs, QuorumQueueArgs

COMMANDS_EXCHANGE = RabbitExchange("jauge.commands", type=ExchangeType.TOPIC, durable=True)
EVENTS_EXCHANGE = RabbitExchange("jauge.events", type=ExchangeType.TOPIC, durable=True)

DLQ_SUFFIX = ".dlq"
DEAD_LETTER_REASON_HEADER = "x-jauge-dead-letter-reason"
DEAD_LETTER_QUEUE_HEADER = "x-jauge-original-queue"
DEAD_LETTER_ROUTING_KEY_HEADER = "x-jauge-original-routing-key"


class RK:
    """Routing keys. Commands are imperative, events are in the past tense."""

    IMPORT_REQUEST = "import.request"
    IMPORT_ANNOUNCE = "import.announce"
    IMPORT_FILE = "import.file"
    IMPORT_QUEUED = "import.queued"
    IMPORT_STARTED = "import.started"
    IMPORT_CLEANUP_STARTED = "import.cleanup_started"
    FILE_IMPORTED = "file.imported"
    IMPORT_FINISHED = "import.finished"
    COLIS_CREATE = "colis.create"
    COLIS_UPDATE = "colis.update"
    COLIS_RETRY = "colis.retry"
    COLIS_CANCEL = "colis.cancel"
    COLIS_ANNOUNCE = "colis.announce"
    COLIS_PHOTO_READY = "colis.photo_ready"
    COLIS_STEP_CHANGED = "colis.step_changed"
    COLIS_CREATED = "colis.created"
    COLIS_UPDATED = "colis.updated"
    COLIS_TASK_STALLED = "colis.task_stalled"
    LOT_CREATED = "lot.created"
    NOTIFICATION_REQUESTED = "notification.requested"
    PROGRESS_UPDATED = "progress.updated"
    COLIS_RPC = "rpc.colis"
    IMPORT_RPC = "rpc.import"


@dataclass(frozen=True)
class QueueSpec:
    """A durable work queue, where it is bound, and its dead-letter queue."""

    name: str
    exchange: RabbitExchange
    routing_keys: tuple[str, ...]
    single_active_consumer: bool = False

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
    "import-svc.requests", COMMANDS_EXCHANGE, (RK.IMPORT_REQUEST, RK.IMPORT_ANNOUNCE)
)
IMPORT_FILES = QueueSpec("import-svc.files", COMMANDS_EXCHANGE, (RK.IMPORT_FILE,))
# reads the gateway asks of import-svc (report, invoices): request/reply, any replica
IMPORT_RPC = QueueSpec("import-svc.rpc", COMMANDS_EXCHANGE, (RK.IMPORT_RPC,))
COLIS_TASKS = QueueSpec("colis-svc.tasks", COMMANDS_EXCHANGE, (RK.COLIS_CREATE, RK.COLIS_UPDATE))
COLIS_CONTROL = QueueSpec(
    "colis-svc.control",
    COMMANDS_EXCHANGE,
    (RK.COLIS_RETRY, RK.COLIS_CANCEL, RK.COLIS_PHOTO_READY, RK.COLIS_ANNOUNCE),
)
COLIS_RPC = QueueSpec("colis-svc.rpc", COMMANDS_EXCHANGE, (RK.COLIS_RPC,))
PROGRESS_EVENTS = QueueSpec(
    "progress-svc.events",
    EVENTS_EXCHANGE,
    (
        RK.IMPORT_QUEUED,
        RK.IMPORT_STARTED,
        RK.IMPORT_CLEANUP_STARTED,
        RK.FILE_IMPORTED,
        RK.IMPORT_FINISHED,
        RK.COLIS_STEP_CHANGED,
    ),
    # progress-svc is the single writer of the read model (see docs/decisions.md):
    # extra replicas stand by and take over at once if the active one dies
    single_active_consumer=True,
)

QUEUES_BY_SERVICE: dict[str, tuple[QueueSpec, ...]] = {
    "import-svc": (IMPORT_REQUESTS, IMPORT_FILES, IMPORT_RPC),
    "colis-svc": (COLIS_TASKS, COLIS_CONTROL, COLIS_RPC),
    "progress-svc": (PROGRESS_EVENTS,),
    "gateway": (),
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
