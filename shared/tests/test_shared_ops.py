"""A service whose port is taken exits at once with uvicorn's startup failure code,
before its app opens anything (it used to stay alive and deaf, its broker connection
reconnecting while asyncio.run waited for it to end)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from jauge_shared.ops import STARTUP_FAILURE, serve


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
