"""`jauge dlq` and `jauge repairs`: what an operator asks of every service's messages and
gauges (docs/operations.md). Mounted by the gateway's `jauge` command; runs alone too:
`python -m jauge_ops.cli`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer

from jauge_shared.contracts.progress import PROGRESS_DB_SUFFIX, REPAIRS_COLLECTION
from jauge_shared.mongo import database_name, make_mongo_client
from jauge_shared.settings import ServiceSettings

app = typer.Typer(help="Jauge operations on every service.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead-letter queues: list, read, replay.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")

T = TypeVar("T")


def _dlq(work: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    from jauge_ops import dlq

    try:
        return asyncio.run(work(str(ServiceSettings().amqp_url)))
    except dlq.DlqError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


@dlq_app.command("list")
def dlq_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Each dead-letter queue, its message count and its original queue's consumers."""
    from jauge_ops import dlq

    statuses = _dlq(dlq.list_dlqs)
    if as_json:
        typer.echo(dlq.to_json([vars(s) for s in statuses]))
        return

    def shown(value: int | None) -> str:
        return "-" if value is None else str(value)

    typer.echo(
        f"{'QUEUE':<32} {'MESSAGES':>8}   {'ORIGINAL QUEUE':<28} {'READY':>6} {'CONSUMERS':>9}"
    )
    for s in statuses:
        typer.echo(
            f"{s.queue:<32} {shown(s.messages):>8}   {s.original_queue:<28} "
            f"{shown(s.original_messages):>6} {shown(s.original_consumers):>9}"
        )


@dlq_app.command("show")
def dlq_show(
    queue: Annotated[str, typer.Argument(help="A dead-letter queue, e.g. colis-svc.tasks.dlq.")],
    limit: Annotated[int, typer.Option(min=1, help="How many messages, oldest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output, bodies in full.")] = False,
) -> None:
    """The oldest messages with their reason; they stay in the queue, in order."""
    from jauge_ops import dlq

    letters = _dlq(lambda url: dlq.show(url, queue, limit))
    if as_json:
        typer.echo(dlq.to_json([letter.as_json() for letter in letters]))
        return
    if not letters:
        typer.echo(f"{queue} is empty.")
    for letter in letters:
        body = letter.body if len(letter.body) <= 300 else letter.body[:300] + "…"
        typer.echo(
            f"#{letter.position} message_id={letter.message_id} type={letter.type} "
            f"from={letter.original_queue} routing_key={letter.original_routing_key}\n"
            f"   reason: {letter.reason}\n"
            f"   body{' (base64)' if letter.body_base64 else ''}: {body}"
        )


@dlq_app.command("replay")
def dlq_replay(
    queue: Annotated[str, typer.Argument(help="A dead-letter queue, e.g. colis-svc.tasks.dlq.")],
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many (default: all).")
    ] = None,
) -> None:
    """Send messages back to their original queue, oldest first (fix the cause first)."""
    from jauge_ops import dlq

    result = _dlq(lambda url: dlq.replay(url, queue, limit))
    for message_id, target in result.replayed:
        typer.echo(f"replayed {message_id} -> {target}")
    typer.echo(f"{len(result.replayed)} replayed, {result.remaining} left in {queue}")


def list_repairs(
    hours: Annotated[float, typer.Option(help="How far back to look.")] = 24.0,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Gauges the reconciler repaired: an event lost between a write and its publish,
    announced again by its owner (docs/operations.md)."""
    settings = ServiceSettings()
    since = datetime.now(UTC) - timedelta(hours=hours)

    async def main() -> list[dict[str, Any]]:
        client = make_mongo_client(settings, "jauge-cli")
        try:
            repairs = client[database_name(settings, PROGRESS_DB_SUFFIX)][REPAIRS_COLLECTION]
            cursor = repairs.find({"at": {"$gte": since}}).sort("at", -1).limit(limit)
            return [doc async for doc in cursor]
        finally:
            await client.close()

    found = asyncio.run(main())
    if as_json:
        typer.echo(json.dumps(found, default=str, indent=2))
        return
    if not found:
        typer.echo(f"No repair in the last {hours:g} h.")
        return
    for repair in found:
        at = repair["at"].isoformat(timespec="seconds")
        typer.echo(f"{at}\t{repair['job_id']}\t{repair['event']}\t{repair['producer']}")


app.command("repairs")(list_repairs)

if __name__ == "__main__":
    app()
