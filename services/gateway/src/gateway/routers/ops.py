"""/healthz, /readyz, /metrics of the gateway."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from gateway.deps import BrokerDep, MongoDep, RpcDep
from jauge_shared.asyncapi import build_document
from jauge_shared.ops import CHECK_TIMEOUT_S, run_checks, store_is_reachable

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"description": "Broker, store or the request/reply path unreachable"}},
)
async def readyz(broker: BrokerDep, mongo: MongoDep, rpc: RpcDep) -> JSONResponse:
    """Ready when the broker, the store and the path to the services all work: `rpc` is
    a message sent through the broker and back to the gateway's reply consumer, so a
    gateway that could no longer ask colis-svc or import-svc anything says so."""
    results = await run_checks(
        {
            "broker": lambda: broker.ping(timeout=CHECK_TIMEOUT_S),
            "store": lambda: store_is_reachable(mongo),
            "rpc": lambda: rpc.round_trip_works(CHECK_TIMEOUT_S),
        }
    )
    ready = all(results.values())
    return JSONResponse({"ready": ready, "checks": results}, status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@cache
def _asyncapi() -> dict[str, Any]:
    return build_document()


@router.get("/asyncapi", summary="AsyncAPI document of every command and event")
async def asyncapi() -> JSONResponse:
    return JSONResponse(_asyncapi())
