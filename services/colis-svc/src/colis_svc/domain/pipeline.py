"""The parcel task state machine (DESIGN.md, "Domain rules"; the seed's ColisCreationTask).

    pending → processing → validation → image_uploading → creation
            → price_calculating → notification_sending → completed

Any active status may fail. How the count of retries works (the seed's `can_retry`):
`retry_count` is the number of retries already started, and a retry is possible from
`failed` or `failed_retry` while `retry_count < max_retries`. So with the default of 3 a
task runs at most four times before an admin has to force it.

- a transient failure schedules an automatic retry (`failed_retry`, `next_retry_at` set)
  while retries remain, else ends in `failed_final`;
- a permanent failure (unknown client, closed lot, unreadable photo, invalid data) never
  retries by itself: it goes to `failed_final` at once (issue 4) and spends no retry;
- by hand, the agent may retry any failed task (`failed`, `failed_retry`, `failed_final`)
  while `retry_count < max_retries`, usually with corrected data. So a task that failed
  permanently can be fixed and relaunched, while one whose automatic retries are spent
  (`failed_final` with `retry_count == max_retries`) needs an admin (`force`);
- `failed` is kept for compatibility (older tasks); nothing moves a task there any more;
- anything not completed can be cancelled (the seed refuses only completed tasks).
  `cancel_plan` says how: at once when no worker holds the task, else cooperatively: the
  request is recorded once (the repository's `cancel` marker, which every replica sees),
  the worker looks for it at each step boundary, undoes its partial parcel, then calls
  `cancel`. A failure after the request ends the task cancelled, never retried.

Every transition returns a new state with `seq` one higher: the progress read model keeps
the highest `seq` it has seen, so a late or reordered event never moves a task backwards,
and the repository saves a state only if the stored `seq` is still the one it read.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from jauge_shared.contracts import ColisData, ColisOperation, TaskStatus
from jauge_shared.contracts.colis import ACTIVE_STATUSES as ACTIVE_STATUSES
from jauge_shared.contracts.colis import FAILED_STATUSES as FAILED_STATUSES
from jauge_shared.contracts.colis import FINISHED_STATUSES
from jauge_shared.contracts.colis import RUNNING_STATUSES as RUNNING_STATUSES
from jauge_shared.contracts.colis import can_cancel as can_cancel
from jauge_shared.contracts.colis import can_retry as can_retry

from .errors import (
    IllegalTransitionError,
    TaskCancelledError,
    invalid_data_error,
)

# The status sets, `can_retry` and `can_cancel` are colis-svc's contracts, imported above
# (jauge_shared.contracts.colis): the gateway and progress-svc read the same ones.
TERMINAL_STATUSES = FINISHED_STATUSES
DEFAULT_MAX_RETRIES = 3


class CancelPlan(StrEnum):
    NOW = "cancelled"
    AT_NEXT_STEP = "cancel_requested"


@dataclass(frozen=True, slots=True)
class Step:
    status: TaskStatus
    percent: int
    label: str


STEPS: tuple[Step, ...] = (
    Step(TaskStatus.PENDING, 0, "En attente"),
    Step(TaskStatus.PROCESSING, 10, "Prise en charge"),
    Step(TaskStatus.VALIDATION, 20, "Validation des données"),
    Step(TaskStatus.IMAGE_UPLOADING, 40, "Traitement de la photo"),
    Step(TaskStatus.CREATION, 60, "Enregistrement du colis"),
    Step(TaskStatus.PRICE_CALCULATING, 80, "Calcul du prix"),
    Step(TaskStatus.NOTIFICATION_SENDING, 90, "Envoi de la notification"),
    Step(TaskStatus.COMPLETED, 100, "Colis finalisé"),
)

_INDEX: dict[TaskStatus, int] = {step.status: i for i, step in enumerate(STEPS)}
_PERCENT: dict[TaskStatus, int] = {step.status: step.percent for step in STEPS}
_LABELS: dict[TaskStatus, str] = {
    **{step.status: step.label for step in STEPS},
    TaskStatus.FAILED: "Échec",
    TaskStatus.FAILED_RETRY: "Échec – nouvel essai programmé",
    TaskStatus.FAILED_FINAL: "Échec définitif",
    TaskStatus.CANCELLED: "Annulé",
}


def percent_of(status: TaskStatus) -> int | None:
    """The step's percentage; None off the main path (failures and cancellation keep the
    percentage the task had reached, see `TaskState.percent`)."""
    return _PERCENT.get(status)


def label_of(status: TaskStatus) -> str:
    return _LABELS[status]


def is_terminal(status: TaskStatus) -> bool:
    """Nothing more happens by itself (only an admin's forced retry leaves `failed_final`)."""
    return status in TERMINAL_STATUSES


def can_advance(status: TaskStatus, target: TaskStatus) -> bool:
    """Forward along the path only. Skipping steps is allowed (an update without a photo
    has nothing to do in `image_uploading`); going back or standing still is not."""
    if status not in _INDEX or target not in _INDEX:
        return False
    return _INDEX[target] > _INDEX[status]


def next_retry_delay(
    retry_count: int,
    base_s: float = 30.0,
    max_s: float = 600.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds before retry number `retry_count + 1`: exponential backoff, "equal jitter".

    The ceiling doubles from `base_s` up to `max_s`; the delay is drawn in its upper half,
    so tasks that failed together (the store was down) do not all come back at once, and
    none comes back almost at once either (full jitter can draw ~0 s).
    """
    if base_s <= 0 or max_s < base_s:
        raise ValueError("need 0 < base_s <= max_s")
    # The exponent is capped so a corrupt retry_count cannot overflow the float.
    ceiling = min(max_s, base_s * 2.0 ** min(max(retry_count, 0), 64))
    uniform = rng.uniform if rng is not None else random.uniform
    return ceiling / 2 + uniform(0.0, ceiling / 2)


def apply_edits(data: ColisData, edits: Mapping[str, Any]) -> ColisData:
    """The agent's corrections before a manual retry, validated like the original form."""
    try:
        return ColisData.model_validate({**data.model_dump(), **edits})
    except ValidationError as e:
        raise invalid_data_error(e) from e


def _illegal(state: TaskState, target: TaskStatus, message: str) -> IllegalTransitionError:
    return IllegalTransitionError(message, status=state.status.value, target=target.value)


@dataclass(frozen=True, slots=True)
class TaskState:
    task_id: str
    operation: ColisOperation
    status: TaskStatus = TaskStatus.PENDING
    seq: int = 0
    retry_count: int = 0
    max_retries: int = DEFAULT_MAX_RETRIES
    next_retry_at: datetime | None = None
    error: str | None = None
    percent: int = 0  # of the furthest step reached in this run; failures keep it

    def __post_init__(self) -> None:
        if self.seq < 0 or self.retry_count < 0 or self.max_retries < 0:
            raise ValueError("seq, retry_count and max_retries cannot be negative")
        if not 0 <= self.percent <= 100:
            raise ValueError(f"percent out of range: {self.percent}")
        if self.next_retry_at is not None and self.next_retry_at.utcoffset() is None:
            raise ValueError("next_retry_at must be timezone-aware")

    @classmethod
    def new(
        cls, task_id: str, operation: ColisOperation, *, max_retries: int = DEFAULT_MAX_RETRIES
    ) -> TaskState:
        """The state a task is stored with when the gateway queues it (seq 0, pending)."""
        return cls(task_id=task_id, operation=operation, max_retries=max_retries)

    @property
    def label(self) -> str:
        return label_of(self.status)

    @property
    def is_terminal(self) -> bool:
        return is_terminal(self.status)

    def can_retry(self, *, force: bool = False) -> bool:
        return can_retry(self.status, self.retry_count, self.max_retries, force=force)

    def retry_due(self, now: datetime) -> bool:
        """An automatic retry is scheduled and its time has come."""
        return (
            self.status == TaskStatus.FAILED_RETRY
            and self.next_retry_at is not None
            and self.next_retry_at <= now
        )

    def _next(self, **changes: Any) -> TaskState:
        return dataclasses.replace(self, seq=self.seq + 1, **changes)

    def advance(self, to_status: TaskStatus) -> TaskState:
        if self.status == TaskStatus.CANCELLED:
            raise TaskCancelledError(
                "La tâche a été annulée.", status=self.status.value, target=to_status.value
            )
        if not can_advance(self.status, to_status):
            raise _illegal(
                self,
                to_status,
                f"Impossible de passer de « {self.label} » à « {label_of(to_status)} ».",
            )
        return self._next(status=to_status, percent=_PERCENT[to_status])

    def fail_transient(self, error: str, now: datetime, delay: float) -> TaskState:
        """`delay` in seconds, typically `next_retry_delay(state.retry_count)`."""
        self._check_can_fail(TaskStatus.FAILED_RETRY)
        if now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        if self.retry_count < self.max_retries:
            return self._next(
                status=TaskStatus.FAILED_RETRY,
                error=error,
                next_retry_at=now + timedelta(seconds=delay),
            )
        return self._next(status=TaskStatus.FAILED_FINAL, error=error, next_retry_at=None)

    def fail_permanent(self, error: str) -> TaskState:
        """Straight to `failed_final`: retrying the same data cannot help. The agent may
        still retry by hand (with corrected data) while retries remain, see `can_retry`."""
        self._check_can_fail(TaskStatus.FAILED_FINAL)
        return self._next(status=TaskStatus.FAILED_FINAL, error=error, next_retry_at=None)

    def _check_can_fail(self, target: TaskStatus) -> None:
        if self.status not in ACTIVE_STATUSES:
            raise _illegal(self, target, f"Une tâche « {self.label} » ne peut pas échouer.")

    def cancel_plan(self, *, worker_holds: bool) -> CancelPlan:
        """How a cancel request is honoured: at once when no worker holds the task (pending,
        failed, waiting for its photo), else at the worker's next step boundary (the
        request is recorded; the worker undoes what it made, then calls `cancel`)."""
        self._check_can_cancel()
        if worker_holds and self.status in RUNNING_STATUSES:
            return CancelPlan.AT_NEXT_STEP
        return CancelPlan.NOW

    def _check_can_cancel(self) -> None:
        if self.status == TaskStatus.COMPLETED:
            raise _illegal(self, TaskStatus.CANCELLED, "Impossible d'annuler une tâche terminée.")
        if self.status == TaskStatus.CANCELLED:
            raise _illegal(self, TaskStatus.CANCELLED, "La tâche est déjà annulée.")

    def cancel(self) -> TaskState:
        self._check_can_cancel()
        return self._next(status=TaskStatus.CANCELLED, next_retry_at=None)

    def retry(self, *, force: bool = False) -> TaskState:
        """Back to pending for another run, by the scheduler or by hand (`force`: admin)."""
        if not self.can_retry(force=force):
            raise _illegal(self, TaskStatus.PENDING, "Cette tâche ne peut plus être relancée.")
        return self._next(
            status=TaskStatus.PENDING,
            retry_count=self.retry_count + 1,
            next_retry_at=None,
            error=None,
            percent=0,
        )
