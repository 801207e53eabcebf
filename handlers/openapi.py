"""GET /openapi.json: the HTTP API described as OpenAPI 3.1.

Each route module may export `openapi_paths` (a dict of OpenAPI path items) so the
document grows with the API; the core endpoints are described here.
"""

from __future__ import annotations

import importlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .errors import json_response

ERROR = {"$ref": "#/components/schemas/Error"}


def _op(
    summary: str,
    ok: str = "200",
    body: str | None = None,
    params: list[Any] | None = None,
    errors: tuple[int, ...] = (401, 403, 404),
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
        },
    }
    for status in errors:
        op["responses"][str(status)] = {
            "description": "error",
            "content": {"application/json": {"schema": ERROR}},
        }
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": body}}}}
    if params:
        op["parameters"] = params
    return op


def _q(name: str, kind: str = "string", description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": kind},
        "description": description,
    }


SESSION_ID = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}

CORE_PATHS: dict[str, Any] = {
    "/api/v2/sessions/create": {
        "post": _op(
            "Create (schedule) a session",
            "201",
            "#/components/schemas/SessionCreate",
            errors=(400, 401, 403, 409, 413, 422),
        )
    },
    "/api/v2/sessions": {
        "get": _op(
            "List the account's sessions",
            params=[_q("status"), _q("session_type"), _q("limit", "integer"), _q("cursor", "integer")],
        )
    },
    "/api/v2/sessions/live": {"get": _op("List live sessions", params=[_q("include_metrics", "boolean")])},
    "/api/v2/session/{session_id}": {"get": _op("Get a session record", params=[SESSION_ID])},
    "/api/v2/session/{session_id}/content": {
        "get": _op(
            "Session content: info, metrics and replay",
            params=[SESSION_ID, _q("include_metrics", "boolean"), _q("include_replay", "boolean")],
        )
    },
    "/api/v2/session/{session_id}/events": {
        "get": _op(
            "A page of the session's event log",
            params=[SESSION_ID, _q("since", "integer"), _q("limit", "integer")],
        )
    },
    **{
        f"/api/v2/session/{{session_id}}/{action}": {
            "post": _op(f"Lifecycle: {action}", params=[SESSION_ID], errors=(401, 403, 404, 409))
        }
        for action in ("start", "pause", "resume", "end", "cancel")
    },
    "/api/v2/live-announce": {
        "post": _op(
            "Announce to one session or every live session of the account",
            body="#/components/schemas/LiveAnnounce",
            errors=(400, 401, 403, 404, 409, 413, 422),
        )
    },
    "/healthz": {"get": _op("Liveness", errors=())},
    "/readyz": {"get": _op("Readiness: database and broker reachable", errors=(503,))},
    "/metrics": {
        "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text format"}}}
    },
}

COMPONENTS: dict[str, Any] = {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
    "schemas": {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "details"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
                }
            },
        },
        "SessionCreate": {
            "type": "object",
            "required": ["title"],
            "properties": {
                "session_id": {"type": "string", "maxLength": 100},
                "title": {"type": "string", "minLength": 1, "maxLength": 200},
                "session_type": {"type": "string", "default": "live"},
                "instructor": {"type": "string", "description": "required for live sessions"},
                "scheduled_start": {"type": "string", "format": "date-time"},
                "max_participants": {"type": "integer", "minimum": 1, "maximum": 1000},
                "session_duration": {"type": "integer", "minimum": 1, "maximum": 7200},
                "breathing_techniques": {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 1,
                    "maxItems": 10,
                },
            },
        },
        "LiveAnnounce": {
            "type": "object",
            "required": ["announcement"],
            "properties": {
                "announcement": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "message": {"type": "string"},
                        "title": {"type": "string"},
                        "type": {"type": "string"},
                        "action_url": {"type": "string"},
                    },
                },
                "session_id": {"type": "string"},
            },
        },
    },
}


def build_document() -> dict[str, Any]:
    paths = dict(CORE_PATHS)
    for name in ("handlers.records.routes", "handlers.publish", "handlers.webhooks"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        for path, item in getattr(module, "openapi_paths", {}).items():
            paths[path] = {**paths.get(path, {}), **item}  # one path, several modules' methods
        COMPONENTS["schemas"].update(getattr(module, "openapi_schemas", {}))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Session Hub",
            "version": "2.0.0",
            "description": "Live sessions over WebSocket (docs/protocol.md) and this HTTP API.",
        },
        "paths": paths,
        "components": COMPONENTS,
        "security": [{"bearer": []}],
    }


async def openapi(request: Request) -> Response:
    return json_response(build_document())


openapi_route = Route("/openapi.json", openapi, methods=["GET"])
