"""Bodies over the limit are refused with the French 413 before they are read whole."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.body_limit import BodySizeLimit, UploadRoute
from gateway.main import create_app
from gateway.settings import GatewaySettings

LIMIT = 1000


async def echo_size(request: Request) -> JSONResponse:
    return JSONResponse({"size": len(await request.body())})


@pytest.fixture
def client() -> httpx.AsyncClient:
    # as in the gateway: inside Starlette's error middleware, outside the routes
    app = Starlette(
        routes=[Route("/", echo_size, methods=["POST"])],
        middleware=[Middleware(BodySizeLimit, max_bytes=LIMIT)],
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.json()["detail"].startswith("Requête trop volumineuse")


async def test_a_body_within_the_limit_reaches_the_route(client: httpx.AsyncClient) -> None:
    async with client:
        response = await client.post("/", content=b"x" * LIMIT)
    assert response.json() == {"size": LIMIT}


async def test_a_declared_length_over_the_limit_is_refused(client: httpx.AsyncClient) -> None:
    async with client:
        assert_too_large(await client.post("/", content=b"x" * (LIMIT + 1)))


async def test_a_chunked_body_is_counted_as_it_arrives(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 400

    async with client:
        response = await client.post("/", content=chunks())
    assert "content-length" not in response.request.headers
    assert_too_large(response)


async def test_a_multipart_body_has_the_same_ceiling(client: httpx.AsyncClient) -> None:
    async with client:
        assert_too_large(await client.post("/", files={"f": ("a.edi", b"x" * (LIMIT * 3))}))


async def test_an_upload_route_takes_multipart_up_to_its_own_ceiling() -> None:
    app = Starlette(
        routes=[Route("/upload", echo_size, methods=["POST"])],
        middleware=[
            Middleware(
                BodySizeLimit,
                max_bytes=LIMIT,
                uploads=[UploadRoute("POST", re.compile("/upload"), LIMIT * 10)],
                authenticate=anyone,
            )
        ],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        response = await c.post("/upload", files={"f": ("a.edi", b"x" * (LIMIT * 3))})
        assert response.json()["size"] > LIMIT * 3
        assert_too_large(await c.post("/upload", files={"f": ("a.edi", b"x" * (LIMIT * 11))}))
        # the larger ceiling is for multipart only
        assert_too_large(await c.post("/upload", content=b"x" * (LIMIT * 3)))


async def anyone(scope: object) -> str:
    return "alice"


async def test_the_gateway_refuses_a_big_json_body_before_anything_else() -> None:
    settings = GatewaySettings(jwt_secret="body-limit-test-" + "x" * 40, max_body_bytes=2048)
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.post("/api/lots", json={"type_lot": "cargo", "pad": "x" * 4096})
        assert_too_large(response)
