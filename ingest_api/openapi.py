"""The OpenAPI document: FastAPI's, plus the request body of POST /v1/trades.

The trades endpoint reads its body itself (to enforce the byte limit while reading and to accept
NDJSON), so FastAPI cannot infer the body schema; it is described here from ``TradeIn``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .deps import API_KEY_HEADER
from .models import TRADE_ADAPTER
from .parse import JSON, NDJSON

TRADE_REF = "#/components/schemas/Trade"
SECURITY_SCHEME = "ApiKey"
SECURED_OPERATIONS = (
    ("/v1/trades", "post"),
    ("/v1/trades", "get"),
    ("/v1/trades/latest", "get"),
)


def trades_request_body(max_trades: int) -> dict[str, Any]:
    trade = {"$ref": TRADE_REF}
    return {
        "required": True,
        "content": {
            JSON: {
                "schema": {
                    "oneOf": [
                        trade,
                        {"type": "array", "items": trade, "minItems": 1, "maxItems": max_trades},
                    ]
                }
            },
            NDJSON: {
                "schema": {
                    "type": "string",
                    "description": f"One Trade object per line, at most {max_trades} lines; "
                    "blank lines are skipped.",
                }
            },
        },
    }


def install_openapi(app: FastAPI, max_trades: int) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            trade_schema = TRADE_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {})["Trade"] = trade_schema
            components["securitySchemes"] = {
                SECURITY_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": API_KEY_HEADER,
                    "description": "An API key issued to the client "
                    "(INGEST_API_KEYS or its Secrets Manager secret).",
                }
            }
            for path, method in SECURED_OPERATIONS:
                schema["paths"][path][method]["security"] = [{SECURITY_SCHEME: []}]
            post = schema["paths"]["/v1/trades"]["post"]
            post["requestBody"] = trades_request_body(max_trades)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
