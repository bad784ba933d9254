"""The small exception hierarchy every service uses to say how a message failed, and the
one rule of what is transient (worth another try later) for every service.

`store_unavailable` and `broker_unavailable` are its two halves: the gateway answers 503
on the first alone; message handling (`jauge_shared.messaging`) and colis-svc's task
retries use `is_transient`, both together.
"""

from __future__ import annotations

import asyncio

import aiormq
from pymongo.errors import ConnectionFailure, ExecutionTimeout, OperationFailure, PyMongoError


class JaugeError(Exception):
    """Base of every error raised on purpose by Jauge code."""


class PoisonMessageError(JaugeError):
    """The message can never be processed as it is: it goes to the dead-letter queue."""


class TransientError(JaugeError):
    """Worth retrying later: a store or broker that is briefly away, a timeout."""


# FerretDB on SQLite answers a write that met another writer's lock with this error
# (SQLITE_BUSY) instead of waiting: the same write succeeds a moment later
STORE_BUSY_MARKERS = ("SQLITE_BUSY", "database is locked")

# what a publish raises while the broker restarts: the channel already closed under it
# (aiormq's "writer is None"), closed by the broker without a reason of its own, or the
# message refused (basic.nack: a queue that is not back yet). Refusals that a retry
# cannot mend (access refused, precondition failed, not found) are subclasses, not these.
BROKER_RESTARTING: tuple[type[BaseException], ...] = (
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.DeliveryError,
)


def store_unavailable(exc: BaseException) -> bool:
    """The store is away, unreachable, too slow for the driver's timeouts, or busy: the
    operation failed through no fault of the request, which may be sent again."""
    if isinstance(exc, (ConnectionFailure, ExecutionTimeout)):
        return True  # AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError...
    if isinstance(exc, PyMongoError) and exc.timeout:  # timeoutMS reached, of any kind
        return True
    return isinstance(exc, OperationFailure) and any(m in str(exc) for m in STORE_BUSY_MARKERS)


def broker_unavailable(exc: BaseException) -> bool:
    """The broker is away or restarting (a connection lost, a channel closed under us)."""
    if isinstance(exc, (aiormq.exceptions.AMQPConnectionError, *BROKER_RESTARTING)):
        return True
    # closed without a reason of its own; its subclasses (access refused...) are not
    return type(exc) is aiormq.exceptions.ChannelClosed


def is_transient(exc: BaseException) -> bool:
    """Worth another try later: said so (`TransientError`), the store or the broker away,
    or a timeout or lost connection of any kind."""
    if isinstance(exc, (TransientError, asyncio.TimeoutError, ConnectionError)):
        return True
    return store_unavailable(exc) or broker_unavailable(exc)
