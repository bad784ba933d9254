"""The envelope every message on the broker carries.

`event_id` is the idempotency key: a consumer that sees the same id twice must change
nothing the second time. Producers that may redo a piece of work after a crash derive
the id from the work itself (`stable_event_id`) so the redo is recognised as a duplicate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self
from uuid import UUID, uuid4, uuid5

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from jauge_shared.contracts.fields import JobId

SCHEMA_VERSION: Literal[1] = 1
# every message carries its job id in this header: the broker's consistent-hash
# exchange partitions progress-svc's events on it (jauge_shared.topology)
JOB_ID_HEADER = "x-jauge-job-id"
_JAUGE_NAMESPACE = UUID("5b0f6a8e-4d3c-4a51-9a35-0b6a4a3f2c11")


def to_milliseconds(moment: datetime) -> datetime:
    """BSON dates keep milliseconds: a time with more would differ once stored, and a
    pushed progress frame would not equal the same document read back."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


# a time in a message or a progress document: milliseconds, as the store keeps it
Timestamp = Annotated[datetime, AfterValidator(to_milliseconds)]


def utc_now() -> datetime:
    return to_milliseconds(datetime.now(UTC))


def stable_event_id(*parts: str) -> UUID:
    """The same work always yields the same event id (UUIDv5 over its parts)."""
    return uuid5(_JAUGE_NAMESPACE, "\x1f".join(parts))


class Message(BaseModel):
    """Envelope fields; subclasses add the payload and fix `type`."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    kind_of_message: ClassVar[Literal["command", "event"]]

    event_id: UUID = Field(
        default_factory=uuid4, description="Unique id of this message; the idempotency key."
    )
    type: str = Field(description="The routing key, repeated in the body.")
    version: Literal[1] = Field(
        default=SCHEMA_VERSION, description="Schema version of the payload."
    )
    occurred_at: Annotated[AwareDatetime, AfterValidator(to_milliseconds)] = Field(
        default_factory=utc_now, description="When it happened (UTC, to the millisecond)."
    )
    producer: str = Field(
        min_length=1, max_length=200, description="Service that produced it.", examples=["gateway"]
    )
    job_id: JobId = Field(
        description="The job or task this message belongs to; also a folder name, so never "
        "`.`, `..`, `/` or NUL."
    )

    def amqp_properties(self) -> dict[str, Any]:
        """Message properties DESIGN.md asks for; the body is the model itself."""
        return {
            "message_id": str(self.event_id),
            "message_type": self.type,
            "content_type": "application/json",
            "persist": True,
            "headers": {JOB_ID_HEADER: self.job_id},
        }


class Command(Message):
    """Work asked of a service (imperative name), published on `jauge.commands`."""

    kind_of_message = "command"


class Event(Message):
    """A fact that happened (past tense), published on `jauge.events`."""

    kind_of_message = "event"

    reannounced: bool = Field(
        default=False,
        description=(
            "True when the producer announces again a state it had already stored (a "
            "redelivered command, or the reconciler asking): the same event id as the "
            "first time, so a consumer that saw it changes nothing."
        ),
    )

    def again(self) -> Self:
        """This event, marked as announced again (same id, same payload)."""
        return self.model_copy(update={"reannounced": True})
