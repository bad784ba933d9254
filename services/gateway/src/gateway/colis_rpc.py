"""Asking colis-svc over RabbitMQ (request/reply): reads, lots, clients, retry and cancel.

A reply `{"ok": false, "status", "detail"}` becomes that HTTP error with colis-svc's
French message; timeouts and broker failures are handled by `gateway.rpc`.
"""

from __future__ import annotations

import asyncio
from time import monotonic
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


class LotChecks:
    """Lots colis-svc said were open, for `lot_check_cache_s` (issue 18, item 1).

    Fifty agents posting parcels into the same lot asked colis-svc about it before each
    answer, and colis-svc answers behind its photo work: under load the check was most
    of the form's wait. The check is a courtesy (a 404 or 409 at once rather than a
    failed task): colis-svc's pipeline checks the lot again before it adds a parcel. So
    an open lot is taken as open for a moment; closing it through this gateway forgets
    it at once, through another replica within `lot_check_cache_s`. Only "open" is kept:
    a refusal is asked again each time.
    """

    MAX_LOTS = 10_000

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._open_until: dict[str, float] = {}

    def known_open(self, lot_id: str) -> bool:
        until = self._open_until.get(lot_id)
        return until is not None and until > monotonic()

    def saw_open(self, lot_id: str) -> None:
        if self.ttl_s <= 0:
            return
        now = monotonic()
        if len(self._open_until) >= self.MAX_LOTS:
            self._open_until = {k: v for k, v in self._open_until.items() if v > now}
        self._open_until[lot_id] = now + self.ttl_s

    def forget(self, lot_id: str) -> None:
        self._open_until.pop(lot_id, None)


async def check_lot_open(rpc: RpcClient, checks: LotChecks, lot_id: str, client_id: str) -> None:
    """colis-svc's `precheck` (the lot exists and is open), unless it said so a moment ago."""
    if checks.known_open(lot_id):
        return
    await read_colis(rpc, "precheck", lot_id=lot_id, client_id=client_id)
    checks.saw_open(lot_id)
