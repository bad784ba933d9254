"""The OpenAPI document tells a client every error it can get, and its shape."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.main import create_app
from gateway.settings import GatewaySettings

PUBLIC = {("post", "/api/auth/token"), ("post", "/api/auth/logout")}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    app = create_app(GatewaySettings(jwt_secret="openapi-test-" + "x" * 40))
    return app.openapi()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, ops in spec["paths"].items()
        if path.startswith("/api/")
        for method, op in ops.items()
    ]


def test_every_api_route_says_it_needs_a_token(spec: dict[str, Any]) -> None:
    missing = [
        f"{method.upper()} {path}"
        for method, path, op in operations(spec)
        if (method, path) not in PUBLIC and "401" not in op["responses"]
    ]
    assert missing == []


def test_every_error_response_has_the_body_the_handlers_send(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    wrong = []
    for method, path, op in operations(spec):
        for code, response in op["responses"].items():
            if not code.startswith(("4", "5")):
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            name = schema.get("$ref", "").rsplit("/", 1)[-1]
            expected = "InvalidRequestBody" if code == "422" else "ErrorBody"
            if name != expected:
                wrong.append(f"{method.upper()} {path} {code}: {name or 'no schema'}")
    assert wrong == []
    assert set(schemas["InvalidRequestBody"]["required"]) == {"detail", "errors"}
    # FastAPI's own 422 shape is not what the gateway answers (see gateway.error_handlers)
    assert "HTTPValidationError" not in schemas


@pytest.mark.parametrize(
    ("method", "path", "codes"),
    [
        ("post", "/api/imports/upload", {"400", "401", "413", "422", "503"}),
        ("post", "/api/lots/{lot_id}/colis", {"401", "404", "409", "413", "415", "422", "503"}),
        ("post", "/api/tasks/{task_id}/retry", {"401", "403", "404", "409", "503"}),
        ("post", "/api/auth/token", {"401", "422", "429"}),
        ("get", "/api/audit", {"401", "403", "422", "503", "504"}),
        ("get", "/api/colis/{colis_id}/history", {"401", "404", "422", "503", "504"}),
        ("get", "/api/lots/{lot_id}/history", {"401", "404", "422", "503", "504"}),
    ],
)
def test_routes_list_the_errors_their_code_raises(
    spec: dict[str, Any], method: str, path: str, codes: set[str]
) -> None:
    assert codes <= set(spec["paths"][path][method]["responses"])
