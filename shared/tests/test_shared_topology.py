"""Routing keys, message models and queue bindings agree (issue 17: each key once)."""

from __future__ import annotations

from jauge_shared.contracts import ALL_MESSAGES, MESSAGES_BY_TYPE, Command, message_type
from jauge_shared.topology import (
    ALL_QUEUES,
    COMMANDS_EXCHANGE,
    EVENTS_EXCHANGE,
    RK,
    RPC_ROUTING_KEYS,
    gateway_progress_queue,
    progress_partitions,
)


def _constants() -> dict[str, str]:
    return {name: value for name, value in vars(RK).items() if name.isupper()}


def test_every_message_model_has_its_routing_key_constant() -> None:
    keys = set(_constants().values())
    missing = [m.__name__ for m in ALL_MESSAGES if message_type(m) not in keys]
    assert not missing, f"no RK constant for {missing}"


def test_every_routing_key_constant_names_a_model_or_an_rpc() -> None:
    stray = {
        name: key
        for name, key in _constants().items()
        if key not in MESSAGES_BY_TYPE and key not in RPC_ROUTING_KEYS
    }
    assert not stray, f"RK constants naming no message model: {stray}"
    assert len(set(_constants().values())) == len(_constants()), "two constants, one key"


def test_every_binding_names_a_model_published_on_the_exchange_it_is_bound_to() -> None:
    queues = (*ALL_QUEUES, *progress_partitions(3))
    assert queues
    for queue in queues:
        for key in queue.routing_keys:
            if key in RPC_ROUTING_KEYS:
                assert queue.routed_from is COMMANDS_EXCHANGE, (queue.name, key)
                continue
            model = MESSAGES_BY_TYPE.get(key)
            assert model is not None, f"{queue.name} is bound to {key!r}, which no model has"
            expected = COMMANDS_EXCHANGE if issubclass(model, Command) else EVENTS_EXCHANGE
            assert queue.routed_from is expected, (queue.name, key)
    assert gateway_progress_queue("r1").routing_key in MESSAGES_BY_TYPE


def test_every_command_has_a_queue_that_consumes_it() -> None:
    bound = {key for queue in ALL_QUEUES for key in queue.routing_keys}
    unconsumed = [
        m.__name__ for m in ALL_MESSAGES if issubclass(m, Command) and message_type(m) not in bound
    ]
    assert not unconsumed, f"commands no queue is bound to: {unconsumed}"
