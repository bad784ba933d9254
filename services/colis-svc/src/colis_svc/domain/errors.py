"""What can go wrong in the parcel domain, sorted by what the caller should do about it.

Handlers map these to broker behaviour: a `PermanentTaskError` fails the task at once
(retrying the same data cannot help), a `TransientTaskError` schedules an automatic retry,
an `IllegalTransitionError` means the command arrived in a state that forbids it
(a duplicate, a late retry, a cancel after completion) and must change nothing, and a
`TaskCancelledError` tells a worker to stop and undo what it made.
"""

from __future__ import annotations

from pydantic import ValidationError

from jauge_shared.french import french_reason


class ColisDomainError(Exception):
    """Base of every error the domain raises. `message` is shown to agents, in French."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PermanentTaskError(ColisDomainError):
    """Unknown client, closed lot, unreadable photo, invalid data: no automatic retry."""


class TransientTaskError(ColisDomainError):
    """A dependency hiccup (timeout, lost connection): worth retrying after a delay."""


class IllegalTransitionError(ColisDomainError):
    """The task's current status does not allow the requested change."""

    def __init__(self, message: str, *, status: str, target: str) -> None:
        super().__init__(message)
        self.status = status
        self.target = target


class TaskCancelledError(ColisDomainError):
    """The agent asked to cancel: the worker must stop, delete what it made (no half-made
    parcel), then store `state.cancel()` unless the state is already `cancelled`.

    Not an `IllegalTransitionError`, so a handler that ignores those cannot swallow it
    and leave the partial parcel behind."""

    def __init__(self, message: str, *, status: str, target: str) -> None:
        super().__init__(message)
        self.status = status
        self.target = target


def invalid_data_error(error: ValidationError) -> PermanentTaskError:
    """A French `PermanentTaskError` listing each invalid field of a pydantic error."""
    parts = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "données"
        parts.append(f"{field} {french_reason(item)}")
    return PermanentTaskError("Données invalides : " + " ; ".join(parts))
