"""Asking colis-svc over RabbitMQ (request/reply): reads, lots, clients, retry and cancel.

A reply `{"ok": false, "status", "detail"}` becomes that HTTP error with colis-svc's
French message; timeouts and broker failures are handled by `gateway.rpc`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import HTTPException

from gateway.rpc import RpcClient, ask_raw, parse_reply
from jauge_shared.contracts import ColisRpcReply, ColisRpcRequest, Command
from jauge_shared.topology import RK

SERVICE_LABEL = "des colis"


async def _request(
    rpc: RpcClient, body: bytes, routing_key: str, *, read: bool = False, **properties: Any
) -> Any:
    raw = await ask_raw(rpc, routing_key, body, SERVICE_LABEL, read=read, **properties)
    reply = parse_reply(raw, ColisRpcReply, routing_key, SERVICE_LABEL)
    if not reply.ok:
        raise HTTPException(reply.status, detail=reply.detail or "Demande refusée.")
    return reply.result


async def call_colis(rpc: RpcClient, method: str, **params: Any) -> Any:
    """One read or lot/client change; returns colis-svc's `result`. The request is
    checked as its typed model (`jauge_shared.contracts.colis_rpc`) before it leaves."""
    request = ColisRpcRequest(method=method, params=params)
    request.query()
    return await _request(
        rpc, request.model_dump_json().encode(), RK.COLIS_RPC, read=request.is_read
    )


_IN_FLIGHT: dict[str, asyncio.Future[Any]] = {}


async def read_colis(rpc: RpcClient, method: str, **params: Any) -> Any:
    """A read, shared by every caller asking the same thing at the same moment: when
    fifty agents post into one lot at once, colis-svc is asked about the lot once.
    Nothing is cached: a read that starts after the shared one ended asks again."""
    key = ColisRpcRequest(method=method, params=params).model_dump_json()
    shared = _IN_FLIGHT.get(key)
    if shared is not None:
        return await asyncio.shield(shared)
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    _IN_FLIGHT[key] = future
    try:
        result = await call_colis(rpc, method, **params)
    except BaseException as e:
        future.set_exception(e)
        future.exception()  # the error is the caller's; do not warn if nobody else waits
        raise
    else:
        future.set_result(result)
        return result
    finally:
        _IN_FLIGHT.pop(key, None)


async def ask_control(rpc: RpcClient, command: Command) -> Any:
    """colis.retry / colis.cancel, sent as a request so the caller learns the outcome."""
    return await _request(
        rpc,
        command.model_dump_json().encode(),
        command.type,
        message_id=str(command.event_id),
        type=command.type,
    )
