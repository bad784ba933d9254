"""One transient-error rule for every service (issue 17: it was written twice, in
messaging.py and mongo.py, and the two disagreed on the store's timeouts)."""

from __future__ import annotations

import aiormq.exceptions as amqp
from pymongo.errors import (
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from jauge_shared import errors, messaging, mongo
from jauge_shared.errors import PoisonMessageError, TransientError, is_transient


def test_the_rule_is_written_once() -> None:
    assert messaging.is_transient is errors.is_transient
    assert mongo.store_unavailable is errors.store_unavailable


def test_what_the_store_calls_unavailable_a_message_handler_retries() -> None:
    store_failures = [
        ServerSelectionTimeoutError("no server"),
        NetworkTimeout("timed out"),
        ExecutionTimeout("operation exceeded time limit"),  # dead-lettered before
        OperationFailure("SQLITE_BUSY: database is locked"),
    ]
    for failure in store_failures:
        assert errors.store_unavailable(failure), failure
        assert is_transient(failure), failure


def test_the_broker_half_and_what_is_never_transient() -> None:
    assert is_transient(amqp.ChannelClosed(320, "CONNECTION_FORCED"))
    assert is_transient(TransientError("later"))
    assert not errors.store_unavailable(amqp.ChannelClosed(320, "CONNECTION_FORCED"))
    for permanent in (
        amqp.ChannelAccessRefused(403, "ACCESS_REFUSED"),
        DuplicateKeyError("E11000"),
        OperationFailure("unknown operator"),
        PoisonMessageError("never"),
        ValueError("a bug"),
    ):
        assert not is_transient(permanent), permanent
