"""InOrderAcks: a `multiple` ack never covers a message still in hand."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from jauge_shared.consumer import InOrderAcks


@dataclass
class FakeChannel:
    """Records acks and nacks, and settles deliveries the way RabbitMQ does."""

    outstanding: set[int] = field(default_factory=set)
    acked: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    frames: int = 0

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        await asyncio.sleep(0)  # a frame takes a turn of the loop: handlers run meanwhile
        self.frames += 1
        assert delivery_tag in self.outstanding, f"unknown delivery tag {delivery_tag}"
        covered = {t for t in self.outstanding if t <= delivery_tag} if multiple else {delivery_tag}
        self.outstanding -= covered
        self.acked.extend(sorted(covered))

    async def basic_nack(self, delivery_tag: int, requeue: bool = True) -> None:
        await asyncio.sleep(0)
        self.frames += 1
        assert delivery_tag in self.outstanding, f"unknown delivery tag {delivery_tag}"
        self.outstanding.discard(delivery_tag)
        self.requeued.append(delivery_tag)


def deliver(channel: FakeChannel, acks: InOrderAcks, tags: range) -> None:
    for tag in tags:
        channel.outstanding.add(tag)
        acks.received(tag)


async def settle_all(acks: InOrderAcks) -> None:
    for _ in range(5):
        await asyncio.sleep(0)
        await acks.drain()


async def test_messages_finished_in_one_iteration_are_acked_by_one_frame() -> None:
    channel = FakeChannel()
    acks = InOrderAcks(channel, window=1000)  # type: ignore[arg-type]
    deliver(channel, acks, range(1, 101))
    for tag in reversed(range(1, 101)):
        acks.finished(tag)
    await settle_all(acks)
    assert channel.acked == list(range(1, 101))
    assert channel.frames == 1


async def test_a_message_in_hand_holds_back_the_acks_of_those_after_it() -> None:
    channel = FakeChannel()
    acks = InOrderAcks(channel, window=1000)  # type: ignore[arg-type]
    deliver(channel, acks, range(1, 6))
    for tag in (1, 2, 4, 5):
        acks.finished(tag)
    await settle_all(acks)
    assert channel.acked == [1, 2]
    assert channel.outstanding == {3, 4, 5}
    acks.finished(3)
    await settle_all(acks)
    assert channel.acked == [1, 2, 3, 4, 5]


async def test_the_messages_behind_one_waiting_for_its_retry_are_acked_meanwhile() -> None:
    channel = FakeChannel()
    acks = InOrderAcks(channel, window=1000)  # type: ignore[arg-type]
    deliver(channel, acks, range(1, 6))
    acks.park(1)
    for tag in (2, 3, 5):
        acks.finished(tag)
    await settle_all(acks)
    assert channel.outstanding == {1, 4}
    await acks.requeue(1)
    acks.finished(4)
    await settle_all(acks)
    assert channel.requeued == [1]
    assert channel.outstanding == set()


async def test_a_crowded_window_is_acked_one_by_one_so_the_broker_sends_more() -> None:
    channel = FakeChannel()
    acks = InOrderAcks(channel, window=8)  # type: ignore[arg-type]
    deliver(channel, acks, range(1, 9))
    for tag in range(2, 9):
        acks.finished(tag)
    await settle_all(acks)
    # half the window in hand at most, the slow head among them
    assert 1 in channel.outstanding and len(channel.outstanding) <= 4


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_whatever_the_order_every_message_is_settled_once_and_never_early(data) -> None:
    count = data.draw(st.integers(1, 40))
    window = data.draw(st.integers(1, 64))
    order = data.draw(st.permutations(list(range(1, count + 1))))
    retried = data.draw(st.sets(st.sampled_from(order), max_size=5))
    turns = data.draw(st.lists(st.integers(0, 3), min_size=count, max_size=count))

    async def scenario() -> FakeChannel:
        channel = FakeChannel()
        acks = InOrderAcks(channel, window=window)  # type: ignore[arg-type]
        deliver(channel, acks, range(1, count + 1))
        for tag in retried:
            acks.park(tag)
        done: set[int] = set()
        for tag, turn in zip(order, turns, strict=True):
            if tag in retried:
                await acks.requeue(tag)
            else:
                acks.finished(tag)
            done.add(tag)
            for _ in range(turn):  # acks in flight while the next handlers finish
                await asyncio.sleep(0)
            # only finished messages may have been settled
            assert set(channel.acked) | set(channel.requeued) <= done
        await settle_all(acks)
        return channel

    channel = asyncio.run(scenario())
    assert sorted(channel.acked) == sorted(set(order) - retried)
    assert sorted(channel.requeued) == sorted(retried)
    assert channel.outstanding == set()
