"""`jauge`: the operator's command line (users, dead-letter queues, repaired gauges)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from gateway.settings import DB_SUFFIX
from gateway.users import Role, UserExistsError, UserRepository
from jauge_ops.cli import dlq_app, list_repairs
from jauge_shared.mongo import database_name, make_mongo_client
from jauge_shared.settings import ServiceSettings

app = typer.Typer(help="Jauge operations.", no_args_is_help=True)
users_app = typer.Typer(help="Manage gateway users.", no_args_is_help=True)
app.add_typer(users_app, name="users")
# the operator tools of every service (jauge-ops), next to the gateway's own users
app.add_typer(dlq_app, name="dlq")
app.command("repairs")(list_repairs)

T = TypeVar("T")


def _with_users(work: Callable[[UserRepository], Awaitable[T]]) -> T:
    settings = ServiceSettings()

    async def main() -> T:
        client = make_mongo_client(settings, "jauge-cli")
        try:
            return await work(UserRepository(client, database_name(settings, DB_SUFFIX)))
        finally:
            await client.close()

    return asyncio.run(main())


def _read_password(password: str | None) -> str:
    if password is not None:
        return password
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\n")


@users_app.command("add")
def add_user(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[Role, typer.Option(help="agent or admin.")] = Role.AGENT,
    password: Annotated[
        str | None, typer.Option(help="Password; read from stdin when omitted.")
    ] = None,
    update: Annotated[bool, typer.Option(help="Reset the password if the user exists.")] = False,
) -> None:
    """Add a user (argon2-hashed password)."""
    secret = _read_password(password)
    if len(secret) < 8:
        typer.echo("Password too short (8 characters at least).", err=True)
        raise typer.Exit(2)

    async def work(users: UserRepository) -> str:
        try:
            await users.add(name, secret, role)
            return "added"
        except UserExistsError:
            if update and await users.set_password(name, secret):
                return "updated"
            raise

    try:
        outcome = _with_users(work)
    except UserExistsError:
        typer.echo(f"User {name!r} already exists.", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{outcome} {name} ({role.value})")


@users_app.command("list")
def list_users() -> None:
    """List users, their role and whether they are disabled."""
    for user in _with_users(lambda users: users.list()):
        state = "disabled" if user.disabled else "active"
        typer.echo(f"{user.username}\t{user.role.value}\t{state}")


@users_app.command("disable")
def disable_user(name: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Disable a user: their tokens stop working at once."""
    if not _with_users(lambda users: users.disable(name)):
        typer.echo(f"No user {name!r}.", err=True)
        raise typer.Exit(1)
    typer.echo(f"disabled {name}")


if __name__ == "__main__":
    app()
