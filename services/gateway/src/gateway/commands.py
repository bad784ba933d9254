"""Sending commands: confirmed by the broker, or the request fails with a clear 503."""

from __future__ import annotations

import logging

from fastapi import HTTPException, status
from faststream.rabbit.publisher import RabbitPublisher

from jauge_shared.contracts import Command
from jauge_shared.messaging import publish

logger = logging.getLogger("gateway.commands")

Publishers = dict[str, RabbitPublisher]  # one per message type the gateway sends


async def send_command(publishers: Publishers, command: Command) -> None:
    try:
        await publish(publishers[command.type], command)
    except Exception as e:
        logger.warning("command not delivered", extra={"type": command.type, "error": str(e)})
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="Service momentanément indisponible : la demande n'a pas été enregistrée, "
            "réessayez dans un instant.",
        ) from e
