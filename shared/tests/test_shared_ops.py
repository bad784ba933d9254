"""A service whose port is taken exits at once with uvicorn's startup failure code,
before its app opens anything (it used to stay alive and deaf, its broker connection
reconnecting while asyncio.run waited for it to end)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jauge_shared.ops import (
    CHECK_TIMEOUT_S,
    STARTUP_FAILURE,
    every,
    in_background,
    serve,
    store_is_reachable,
)


def test_a_taken_port_is_a_startup_failure_before_the_app_starts() -> None:
    started: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started.append(scope["type"])  # the lifespan would connect to the broker here

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exited:
            serve(app, host="127.0.0.1", port=port, graceful_timeout_s=1)

    assert exited.value.code == STARTUP_FAILURE
    assert started == []


async def test_a_periodic_pass_that_fails_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    passes: list[int] = []
    again = asyncio.Event()

    async def work() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            raise ConnectionError("the store is away")
        again.set()

    async with in_background(every(0.01, work, "sweeper")):
        await asyncio.wait_for(again.wait(), 10)
    assert len(passes) >= 2
    assert "sweeper pass failed" in caplog.text


async def test_background_work_is_stopped_when_the_block_ends() -> None:
    stopped = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()

    async with in_background(forever()):
        await asyncio.sleep(0)
    assert stopped.is_set()


async def test_a_store_away_is_unreachable_within_the_check_bound(
    test_env: Any,
) -> None:
    """The readiness ping gives up by the driver's own deadline (five at once, within
    the check's bound, although the client would wait 30 s to select a server); a
    store that is there answers."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    away: AsyncMongoClient[Any] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=30_000
    )
    here: AsyncMongoClient[Any] = AsyncMongoClient(test_env.mongo_url)
    try:
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(*(store_is_reachable(away) for _ in range(5)))
        assert results == [False] * 5
        assert asyncio.get_running_loop().time() - started < CHECK_TIMEOUT_S + 2
        assert await store_is_reachable(here)
    finally:
        await away.close()
        await here.close()
