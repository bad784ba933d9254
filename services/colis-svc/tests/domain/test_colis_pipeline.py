"""The task state machine: steps, retry and cancel rules, seq, backoff."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from colis_svc.domain import (
    ACTIVE_STATUSES,
    STEPS,
    CancelPlan,
    IllegalTransitionError,
    PermanentTaskError,
    TaskCancelledError,
    TaskState,
    apply_edits,
    can_advance,
    can_cancel,
    can_retry,
    is_terminal,
    label_of,
    next_retry_delay,
    percent_of,
)
from jauge_shared.contracts import ColisData, ColisOperation, TaskStatus, TransportType

S = TaskStatus
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
PATH = [step.status for step in STEPS]


def new_task(max_retries: int = 3) -> TaskState:
    return TaskState.new("t-1", ColisOperation.CREATE, max_retries=max_retries)


def run_to(state: TaskState, status: TaskStatus) -> TaskState:
    for step in PATH[PATH.index(state.status) + 1 : PATH.index(status) + 1]:
        state = state.advance(step)
    return state


def test_steps_in_order_with_percent_and_label() -> None:
    assert [(s.status, s.percent, s.label) for s in STEPS] == [
        (S.PENDING, 0, "En attente"),
        (S.PROCESSING, 10, "Prise en charge"),
        (S.VALIDATION, 20, "Validation des données"),
        (S.IMAGE_UPLOADING, 40, "Traitement de la photo"),
        (S.CREATION, 60, "Enregistrement du colis"),
        (S.PRICE_CALCULATING, 80, "Calcul du prix"),
        (S.NOTIFICATION_SENDING, 90, "Envoi de la notification"),
        (S.COMPLETED, 100, "Colis finalisé"),
    ]


def test_every_status_has_a_french_label() -> None:
    assert {status: label_of(status) for status in S if status not in PATH} == {
        S.FAILED: "Échec",
        S.FAILED_RETRY: "Échec – nouvel essai programmé",
        S.FAILED_FINAL: "Échec définitif",
        S.CANCELLED: "Annulé",
    }
    assert percent_of(S.PRICE_CALCULATING) == 80
    assert percent_of(S.FAILED_RETRY) is None


def test_active_and_terminal_statuses() -> None:
    assert set(PATH) - {S.COMPLETED} == ACTIVE_STATUSES
    assert {s for s in S if is_terminal(s)} == {S.COMPLETED, S.FAILED_FINAL, S.CANCELLED}


@pytest.mark.parametrize(
    ("status", "retry_count", "max_retries", "force", "expected"),
    [
        (S.FAILED, 0, 3, False, True),
        (S.FAILED_RETRY, 2, 3, False, True),
        (S.FAILED_RETRY, 3, 3, False, False),  # budget spent
        (S.FAILED, 3, 3, False, False),
        (S.FAILED_FINAL, 0, 3, False, True),  # a permanent failure, fixed by hand
        (S.FAILED_FINAL, 3, 3, False, False),  # retries spent: only an admin may
        (S.FAILED_FINAL, 5, 3, True, True),
        (S.FAILED, 9, 3, True, True),
        (S.COMPLETED, 0, 3, True, False),
        (S.CANCELLED, 0, 3, True, False),
        (S.PROCESSING, 0, 3, True, False),  # a running task is not retried
        (S.PENDING, 0, 3, False, False),
    ],
)
def test_can_retry(
    status: TaskStatus, retry_count: int, max_retries: int, force: bool, expected: bool
) -> None:
    assert can_retry(status, retry_count, max_retries, force=force) is expected


def test_only_completed_and_cancelled_tasks_cannot_be_cancelled() -> None:
    assert {s for s in S if not can_cancel(s)} == {S.COMPLETED, S.CANCELLED}


def test_can_advance_moves_forward_only() -> None:
    assert can_advance(S.PENDING, S.PROCESSING)
    assert can_advance(S.VALIDATION, S.CREATION)  # an update without a photo skips a step
    assert not can_advance(S.CREATION, S.VALIDATION)
    assert not can_advance(S.CREATION, S.CREATION)
    assert not can_advance(S.COMPLETED, S.COMPLETED)
    assert not can_advance(S.FAILED, S.PROCESSING)
    assert not can_advance(S.PROCESSING, S.FAILED)


def test_happy_path_walks_every_step_one_seq_at_a_time() -> None:
    state = new_task()
    assert (state.status, state.seq, state.percent, state.label) == (S.PENDING, 0, 0, "En attente")
    for expected_seq, step in enumerate(STEPS[1:], start=1):
        state = state.advance(step.status)
        assert (state.status, state.seq, state.percent) == (step.status, expected_seq, step.percent)
    assert state.is_terminal
    with pytest.raises(IllegalTransitionError):
        state.advance(S.COMPLETED)


def test_going_backwards_is_illegal_and_changes_nothing() -> None:
    state = run_to(new_task(), S.CREATION)
    with pytest.raises(IllegalTransitionError, match="Impossible de passer") as caught:
        state.advance(S.VALIDATION)
    assert (caught.value.status, caught.value.target) == ("creation", "validation")
    assert state.status == S.CREATION  # frozen: the failed call left it alone
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.status = S.PENDING  # type: ignore[misc]


def test_transient_failures_retry_three_times_then_fail_for_good() -> None:
    state = run_to(new_task(), S.PROCESSING)
    runs = 1
    for expected_retries in range(3):
        state = state.fail_transient("MongoDB injoignable", NOW, 60.0)
        assert state.status == S.FAILED_RETRY
        assert state.retry_count == expected_retries
        assert state.next_retry_at == NOW + timedelta(seconds=60)
        assert state.error == "MongoDB injoignable"
        assert state.percent == 10  # keeps the step reached
        assert state.can_retry()
        assert not state.retry_due(NOW)
        assert state.retry_due(NOW + timedelta(seconds=60))
        state = state.retry()
        assert (state.status, state.percent, state.error, state.next_retry_at) == (
            S.PENDING,
            0,
            None,
            None,
        )
        state = run_to(state, S.PROCESSING)
        runs += 1
    state = state.fail_transient("MongoDB injoignable", NOW, 60.0)
    assert (state.status, state.retry_count, state.next_retry_at) == (S.FAILED_FINAL, 3, None)
    assert runs == 4  # the first run and three retries
    assert not state.can_retry()
    with pytest.raises(IllegalTransitionError, match="ne peut plus être relancée"):
        state.retry()


def test_permanent_failure_does_not_retry_by_itself_but_can_be_retried_by_hand() -> None:
    state = run_to(new_task(), S.VALIDATION).fail_permanent("Client inconnu : c9")
    assert (state.status, state.retry_count, state.next_retry_at) == (S.FAILED_FINAL, 0, None)
    assert state.error == "Client inconnu : c9"
    assert not state.retry_due(NOW + timedelta(days=1))
    assert state.can_retry()
    state = state.retry()
    assert (state.status, state.retry_count) == (S.PENDING, 1)


def test_permanent_failure_with_no_retry_left_is_final() -> None:
    state = run_to(new_task(max_retries=0), S.VALIDATION).fail_permanent("Lot fermé")
    assert state.status == S.FAILED_FINAL


def test_admin_can_force_a_final_failure_once_more() -> None:
    state = run_to(new_task(max_retries=0), S.PROCESSING).fail_transient("x", NOW, 1.0)
    assert state.status == S.FAILED_FINAL
    state = state.retry(force=True)
    assert (state.status, state.retry_count) == (S.PENDING, 1)
    state = run_to(state, S.PROCESSING).fail_transient("x", NOW, 1.0)
    assert state.status == S.FAILED_FINAL  # no fresh budget: one forced try


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        new_task().fail_transient("x", datetime(2026, 1, 1), 1.0)


def test_failing_is_only_possible_while_active() -> None:
    done = run_to(new_task(), S.COMPLETED)
    with pytest.raises(IllegalTransitionError):
        done.fail_transient("x", NOW, 1.0)
    with pytest.raises(IllegalTransitionError):
        done.fail_permanent("x")


def test_cancel_pending_or_failed_task_at_once() -> None:
    assert new_task().cancel_plan(worker_holds=True) is CancelPlan.NOW
    assert new_task().cancel().status == S.CANCELLED
    failed = run_to(new_task(), S.PROCESSING).fail_transient("x", NOW, 30.0)
    cancelled = failed.cancel()
    assert (cancelled.status, cancelled.next_retry_at, cancelled.seq) == (
        S.CANCELLED,
        None,
        failed.seq + 1,
    )
    assert not cancelled.can_retry(force=True)
    with pytest.raises(IllegalTransitionError, match="déjà annulée"):
        cancelled.cancel()


def test_completed_task_cannot_be_cancelled() -> None:
    done = run_to(new_task(), S.COMPLETED)
    with pytest.raises(IllegalTransitionError, match="Impossible d'annuler une tâche terminée"):
        done.cancel_plan(worker_holds=False)


def test_cancelling_a_running_task_is_cooperative() -> None:
    running = run_to(new_task(), S.IMAGE_UPLOADING)
    # a worker holds it: the request is recorded, the worker stops at its next step
    assert running.cancel_plan(worker_holds=True) is CancelPlan.AT_NEXT_STEP
    # waiting for its photo, nobody holds it: cancelled at once
    assert running.cancel_plan(worker_holds=False) is CancelPlan.NOW
    cancelled = running.cancel()
    assert (cancelled.status, cancelled.seq) == (S.CANCELLED, running.seq + 1)
    with pytest.raises(IllegalTransitionError, match="déjà annulée"):
        cancelled.cancel_plan(worker_holds=True)
    with pytest.raises(TaskCancelledError):
        cancelled.advance(S.CREATION)  # a redelivered command finds it cancelled


def test_the_plan_answers_what_the_cancel_request_replies() -> None:
    # colis-svc replies the plan's value: the gateway and the dashboard know these two
    assert {plan.value for plan in CancelPlan} == {"cancelled", "cancel_requested"}


def test_apply_edits_validates_like_the_form() -> None:
    data = ColisData(
        client_id="c1",
        type_transport=TransportType.CARGO,
        longueur=Decimal(30),
        largeur=Decimal(40),
        hauteur=Decimal(50),
        poids=Decimal(10),
    )
    fixed = apply_edits(data, {"client_id": "c2", "poids": "12.5"})
    assert (fixed.client_id, fixed.poids, fixed.longueur) == ("c2", Decimal("12.5"), Decimal(30))
    with pytest.raises(PermanentTaskError, match="Données invalides : poids doit être supérieur"):
        apply_edits(data, {"poids": "-1"})
    with pytest.raises(PermanentTaskError, match="couleur champ inconnu"):
        apply_edits(data, {"couleur": "rouge"})


def test_state_invariants_are_checked() -> None:
    with pytest.raises(ValueError, match="negative"):
        TaskState("t", ColisOperation.UPDATE, seq=-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        TaskState("t", ColisOperation.UPDATE, next_retry_at=datetime(2026, 1, 1))


# Backoff ------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    rng = random.Random(7)
    for retry_count, ceiling in [(0, 30), (1, 60), (2, 120), (3, 240), (5, 600), (40, 600)]:
        delay = next_retry_delay(retry_count, 30.0, 600.0, rng=rng)
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_is_jittered_and_reproducible_with_a_seeded_rng() -> None:
    delays = {next_retry_delay(2, rng=random.Random(seed)) for seed in range(20)}
    assert len(delays) > 1
    assert next_retry_delay(2, rng=random.Random(1)) == next_retry_delay(2, rng=random.Random(1))


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="base_s"):
        next_retry_delay(1, 0.0, 10.0)
    with pytest.raises(ValueError, match="base_s"):
        next_retry_delay(1, 20.0, 10.0)


@given(
    st.integers(min_value=0, max_value=10_000),
    st.floats(min_value=0.001, max_value=1e4),
    st.floats(min_value=1.0, max_value=100.0),
    st.randoms(use_true_random=False),
)
def test_backoff_stays_within_bounds(
    retry_count: int, base_s: float, factor: float, rng: random.Random
) -> None:
    max_s = base_s * factor
    delay = next_retry_delay(retry_count, base_s, max_s, rng=rng)
    assert base_s / 2 <= delay <= max_s


# Properties over any sequence of transitions --------------------------------------------

ACTIONS = [
    "advance",
    "fail_transient",
    "fail_permanent",
    "cancel",
    "retry",
    "force",  # retry(force=True)
]


def apply(state: TaskState, action: str, target: TaskStatus, delay: float) -> TaskState:
    if action == "advance":
        return state.advance(target)
    if action == "fail_transient":
        return state.fail_transient("panne", NOW, delay)
    if action == "fail_permanent":
        return state.fail_permanent("données")
    if action == "cancel":
        return state.cancel()
    return state.retry(force=action == "force")


@given(
    st.integers(min_value=0, max_value=4),
    st.lists(
        st.tuples(
            st.sampled_from(ACTIONS),
            st.sampled_from(list(TaskStatus)),
            st.floats(min_value=0, max_value=3600),
        ),
        max_size=60,
    ),
)
def test_seq_grows_by_one_per_legal_transition(
    max_retries: int, actions: list[tuple[str, TaskStatus, float]]
) -> None:
    state = new_task(max_retries)
    for action, target, delay in actions:
        before = state
        try:
            state = apply(state, action, target, delay)
        except (IllegalTransitionError, TaskCancelledError):
            assert state == before
            continue
        assert state.seq == before.seq + 1
        assert state.task_id == before.task_id
        # what the dashboard relies on, whatever the history
        assert 0 <= state.percent <= 100
        assert (state.next_retry_at is not None) == (state.status == S.FAILED_RETRY)
        if state.status == S.FAILED_RETRY:
            assert state.retry_count < state.max_retries
            assert state.can_retry()
        if state.status in (S.COMPLETED, S.CANCELLED):
            assert not state.can_retry(force=True)
        if state.status in PATH:
            assert state.percent == percent_of(state.status)


@given(
    st.sampled_from([S.COMPLETED, S.CANCELLED]),
    st.integers(min_value=0, max_value=100),
    st.integers(min_value=0, max_value=100),
    st.booleans(),
)
def test_completed_or_cancelled_tasks_are_never_retried(
    status: TaskStatus, retry_count: int, max_retries: int, force: bool
) -> None:
    assert not can_retry(status, retry_count, max_retries, force=force)
