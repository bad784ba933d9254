"""A queue read with aio-pika directly, for the one queue where FastStream's cost shows.

FastStream's per-message path (subscriber machinery, dependency injection, logging
context, the middlewares) cost progress-svc about 0.35 ms per event, 40% of its time
on one busy job, where the broker's own consume ceiling is 0.08 ms a message
(docs/performance.md). This consumer keeps what that path gave the service:

- the same failure policy (`FailurePolicy`): poison to the DLQ with its reason, a
  transient failure requeued after its back-off delay;
- the same Prometheus series (FastStream's families, same labels), so dashboards and
  alerts see no difference;
- the trace context of each message, when tracing is on;
- acks only after the handler returned; a robust connection that reconnects and
  consumes again by itself; a graceful stop that lets the messages in hand finish.

Acks are sent many at a time (`InOrderAcks`): one ack per message, each a frame
written and drained, was 20% of progress-svc's time once FastStream was gone.

The handler receives the raw body; parsing is its business (errors it raises are
settled by the policy like any other).

Over 300 lines on purpose: the ack window, the metrics and the consumer's life share one
rule (each delivery settled once, in order), which is only checked by reading them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiormq.abc
from aio_pika import IncomingMessage
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from faststream.prometheus.container import MetricsContainer
from faststream.prometheus.types import ProcessingStatus
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from jauge_shared.broker import amqp_url, connect_robust
from jauge_shared.identity import connection_name
from jauge_shared.messaging import FailurePolicy
from jauge_shared.settings import ServiceSettings
from jauge_shared.tracing import tracer_provider

logger = logging.getLogger("jauge.consumer")

Handler = Callable[[bytes], Awaitable[Any]]


class InOrderAcks:
    """Acknowledges a channel's deliveries with one `multiple` ack per loop iteration.

    A `multiple` ack settles every outstanding delivery up to its tag, so it may only
    name a tag whose predecessors are all finished: handlers finish out of order (the
    events of one job wait for its previous write), and an ack covering a message still
    in hand would drop it if the process died. Requeues are sent at once, one by one,
    before any later ack can cover them.
    """

    def __init__(self, channel: aiormq.abc.AbstractChannel, window: int) -> None:
        self.channel = channel
        # past this many deliveries in hand, finished ones are acked one by one: the
        # broker sends no more than the prefetch window unacked, and a slow message at
        # the head must not hold the queue (1,000 busy jobs: 445 events/s, not 1,000)
        self._crowded = max(1, window // 2)
        self._in_hand: deque[int] = deque()  # delivery tags, in delivery order
        self._finished: set[int] = set()
        self._parked: set[int] = set()
        self._one_by_one: deque[int] = deque()
        self._settled_alone: set[int] = set()
        self._ack_upto = 0
        self._sent_upto = 0
        self._flushing: asyncio.Task[None] | None = None

    def received(self, delivery_tag: int) -> None:
        self._in_hand.append(delivery_tag)

    def finished(self, delivery_tag: int) -> None:
        """The message is done with and may be acked."""
        self._finished.add(delivery_tag)
        self._advance()

    def park(self, delivery_tag: int) -> None:
        """The message waits out a retry delay (up to `retry_max_delay_s`) before its
        requeue: the messages behind it are acked one by one meanwhile, or the prefetch
        window would fill and the whole queue wait for one message."""
        self._parked.add(delivery_tag)
        self._advance()

    def _advance(self) -> None:
        in_hand, finished, alone = self._in_hand, self._finished, self._settled_alone
        while in_hand:
            head = in_hand[0]
            if head in finished:
                finished.discard(head)
                self._ack_upto = head
            elif head in alone:  # acked or requeued by itself: no `multiple` may name it
                alone.discard(head)
            else:
                break
            in_hand.popleft()
        if finished and (len(in_hand) > self._crowded or in_hand[0] in self._parked):
            self._one_by_one.extend(sorted(finished))
            alone.update(finished)
            finished.clear()
        if self._flushing is None and (self._ack_upto > self._sent_upto or self._one_by_one):
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def requeue(self, delivery_tag: int) -> None:
        await _settle(self.channel.basic_nack(delivery_tag, requeue=True))
        # settled now: no later ack may name it (an unknown tag closes the channel)
        self._parked.discard(delivery_tag)
        self._settled_alone.add(delivery_tag)
        self._advance()

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # let this iteration's handlers finish first
            while self._ack_upto > self._sent_upto or self._one_by_one:
                upto = self._ack_upto
                if upto > self._sent_upto:
                    # it covers every finished delivery up to `upto`, those queued for
                    # an ack of their own too: acking one of them again would name a
                    # tag the broker no longer knows
                    self._one_by_one = deque(t for t in self._one_by_one if t > upto)
                    await _settle(self.channel.basic_ack(upto, multiple=True))
                    self._sent_upto = upto
                if self._one_by_one:
                    await _settle(self.channel.basic_ack(self._one_by_one.popleft()))
        finally:
            self._flushing = None

    async def drain(self) -> None:
        if self._flushing is not None:
            await asyncio.shield(self._flushing)


class _Series:
    """This queue's children of FastStream's metric families, resolved once."""

    def __init__(self, container: MetricsContainer, app_name: str, handler: str) -> None:
        labels = {"app_name": app_name, "broker": "rabbit", "handler": handler}
        self.received = container.received_messages_total.labels(**labels)
        self.size = container.received_messages_size_bytes.labels(**labels)
        self.in_process = container.received_messages_in_process.labels(**labels)
        self.duration = container.received_processed_messages_duration_seconds.labels(**labels)
        self.processed = {
            status: container.received_processed_messages_total.labels(
                **labels, status=status.value
            )
            for status in ProcessingStatus
        }
        self._exceptions = container.received_processed_messages_exceptions_total
        self._labels = labels

    def exception(self, exc: BaseException) -> None:
        self._exceptions.labels(**self._labels, exception_type=type(exc).__name__).inc()


def metrics_container(middleware: RabbitPrometheusMiddleware) -> MetricsContainer:
    """The families FastStream's middleware registered (one registration per name)."""
    container = getattr(middleware, "_metrics_container", None)
    if not isinstance(container, MetricsContainer):  # pragma: no cover - FastStream changed
        raise TypeError("FastStream's Prometheus middleware no longer exposes its metrics")
    return container


class DirectConsumer:
    def __init__(
        self,
        settings: ServiceSettings,
        service: str,
        queue: str,
        handler: Handler,
        *,
        policy: FailurePolicy,
        metrics: MetricsContainer,
        metrics_handler: str | None = None,
        on_new_channel: Callable[[], None] | None = None,
    ) -> None:
        """`on_new_channel`: called before the first delivery of each channel (the
        first, and each one after a reconnection). `metrics_handler`: the `handler`
        label of its series (the queue's name by default; partitions share one)."""
        self.settings = settings
        self.service = service
        self.queue_name = queue
        self.handler = handler
        self.policy = policy
        self.on_new_channel = on_new_channel
        self.series = _Series(metrics, service, metrics_handler or queue)
        provider = tracer_provider(settings, service)
        self.tracer = provider.get_tracer("jauge.consumer") if provider is not None else None
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._consumer: tuple[aiormq.abc.AbstractChannel, str] | None = None
        self._acks: InOrderAcks | None = None
        self._in_hand: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._fresh_consumer = False
        # when the last delivery came: under single active consumer, a sign of being
        # the active one (nothing else in AMQP 0-9-1 tells)
        self.last_delivery = 0.0

    async def start(self) -> None:
        """Consume the (already declared) queue; returns once the consumer is registered."""
        self._connection = await connect_robust(
            amqp_url(self.settings),
            client_properties={"connection_name": connection_name(f"{self.service}.consumer")},
        )
        channel = self._channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self.settings.prefetch)
        await channel.get_queue(self.queue_name, ensure=True)  # fails fast if undeclared
        # consumed on the channel underneath: aio-pika's own consumer wraps each delivery
        # in a message object and one more task (10% of the time, profiled); the robust
        # channel restores its QoS after a reconnection, then calls this to consume again
        channel.reopen_callbacks.add(self._consume_again)
        await self._consume()

    async def _consume(self) -> None:
        assert self._channel is not None
        underlay = await self._channel.get_underlay_channel()
        result = await underlay.basic_consume(self.queue_name, self._on_message, no_ack=False)
        assert result.consumer_tag is not None
        self._consumer = (underlay, result.consumer_tag)

    async def _consume_again(self, *_: object) -> None:
        if not self._stopping:
            await self._consume()

    async def step_back(self) -> None:
        """Cancel and consume again on the same channel: under single active consumer,
        the next consumer waiting becomes the active one and this one waits behind the
        others. The messages in hand are still settled on this channel."""
        if self._consumer is None or self._stopping:
            return
        underlay, consumer_tag = self._consumer
        await underlay.basic_cancel(consumer_tag)
        self.last_delivery = 0.0
        # if this consumer is made active again, another replica has been meanwhile
        self._fresh_consumer = True
        await self._consume()

    async def consumer_count(self) -> int:
        """Consumers of the queue, this one included (every replica of the service)."""
        assert self._channel is not None
        # on the channel underneath: the robust channel answers a passive declare of a
        # queue it knows from memory, with the counts of its first declaration
        underlay = await self._channel.get_underlay_channel()
        declared = await underlay.queue_declare(self.queue_name, passive=True)
        return int(declared.consumer_count or 0)

    def is_consuming(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.is_closed and not self._stopping

    async def stop(self, timeout_s: float) -> None:
        """Stop taking messages, let those in hand finish (up to `timeout_s`), close.

        Whatever was not acked by then goes back to the queue with the connection.
        """
        self._stopping = True
        if self._connection is None:
            return
        if self._consumer is not None:
            underlay, consumer_tag = self._consumer
            with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
                await underlay.basic_cancel(consumer_tag)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            logger.warning("stopped with messages in hand", extra={"in_hand": len(self._in_hand)})
        await self._connection.close()
        self._connection = None

    def _acks_of(self, message: aiormq.abc.DeliveredMessage) -> InOrderAcks:
        """Tags count per channel: a reconnection starts a new count (and the broker
        has requeued whatever the old channel held)."""
        acks = self._acks
        new_channel = acks is None or acks.channel is not message.channel
        if new_channel:
            acks = self._acks = InOrderAcks(message.channel, self.settings.prefetch)
        if (new_channel or self._fresh_consumer) and self.on_new_channel is not None:
            self.on_new_channel()
        self._fresh_consumer = False
        assert acks is not None
        return acks

    async def _on_message(self, message: aiormq.abc.DeliveredMessage) -> None:
        acks = self._acks_of(message)
        self.last_delivery = time.monotonic()
        tag = message.delivery_tag
        assert tag is not None  # consumed with acknowledgements
        acks.received(tag)
        if self._stopping:
            # arrived between the stop and the connection's close: back to the queue
            await acks.requeue(tag)
            return
        task = asyncio.current_task()
        if task is not None:
            self._in_hand.add(task)
            self._idle.clear()
        try:
            if self.tracer is None:
                await self._process(message, acks, tag)
            else:
                parent = propagate.extract(message.header.properties.headers or {})
                with self.tracer.start_as_current_span(
                    f"{self.queue_name} process", context=parent, kind=SpanKind.CONSUMER
                ):
                    await self._process(message, acks, tag)
        finally:
            if task is not None:
                self._in_hand.discard(task)
                if not self._in_hand:
                    self._idle.set()

    async def _process(
        self, message: aiormq.abc.DeliveredMessage, acks: InOrderAcks, tag: int
    ) -> None:
        series = self.series
        series.received.inc()
        series.size.observe(len(message.body))
        series.in_process.inc()
        started = time.perf_counter()
        try:
            await self.handler(message.body)
        except Exception as exc:
            series.exception(exc)
            trace.get_current_span().record_exception(exc)
            # the policy reads the message's properties the way aio-pika presents them
            incoming = IncomingMessage(message, no_ack=False)
            if await self.policy.settle(
                incoming, self.queue_name, exc, before_delay=lambda: acks.park(tag)
            ):
                series.processed[ProcessingStatus.acked].inc()
                acks.finished(tag)
            else:
                series.processed[ProcessingStatus.nacked].inc()
                await acks.requeue(tag)
        else:
            self.policy.succeeded(message.header.properties.message_id or "")
            series.processed[ProcessingStatus.acked].inc()
            acks.finished(tag)
        finally:
            series.in_process.dec()
            series.duration.observe(time.perf_counter() - started)


async def _settle(acknowledgement: Awaitable[None]) -> None:
    """An ack or nack on a channel that died meanwhile: the broker requeued the message
    when the channel closed, and it comes back (every handler here is idempotent)."""
    try:
        await acknowledgement
    except (aio_pika.exceptions.AMQPError, aio_pika.exceptions.ChannelInvalidStateError) as e:
        logger.warning("acknowledgement lost with the channel", extra={"error": repr(e)})
