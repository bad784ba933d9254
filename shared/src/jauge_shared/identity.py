"""How a process names itself to the broker and the store."""

from __future__ import annotations

import os
import socket


def connection_name(service: str) -> str:
    """`<service>@<host>:<pid>`, as shown in RabbitMQ's management UI."""
    return f"{service}@{socket.gethostname()}:{os.getpid()}"
