"""GET /openapi.json: the HTTP API as OpenAPI 3.1, generated from the application itself.

Paths and methods are read from the app's routes; each endpoint's `@operation` (see
`handlers.api`) gives its summary, parameters, request and response models, and the
statuses it answers. Nothing here is written by hand but the document's frame, so the
document cannot drift from what the hub serves: `tests/test_openapi.py` checks it is
valid and that every route is in it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, TypeAdapter
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.errors import HTTP_STATUS, MEANING, ErrorCode
from hub.values import SessionId

from .api import Operation, operation, operation_of, query_names
from .errors import json_response
from .http_limits import RETRY_AFTER, is_metered

REF = "#/components/schemas/{model}"
API_DESCRIPTION = (
    "Live sessions over WebSocket (described at /asyncapi.json and in docs/protocol.md) and this "
    'HTTP API. Every error is `{"error": {"code", "message", "details"}}`; a 422 lists every '
    "broken rule in `details.errors` as `{field, rule, message}`."
)


class ErrorDetail(BaseModel):
    code: ErrorCode = Field(description="; ".join(f"{code}: {text}" for code, text in MEANING.items()))
    message: str
    details: dict[str, Any] = Field(
        description="for `invalid`: `field` and `rule` of the first problem, `errors` listing every one"
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


def _operations(routes: list[BaseRoute]) -> list[tuple[str, str, Operation]]:
    found = []
    for route in routes:
        described = operation_of(getattr(route, "endpoint", None))
        if not isinstance(route, Route) or described is None:
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append((route.path, method.lower(), described))
    return found


def _schemas(operations: list[tuple[str, str, Operation]]) -> tuple[dict[Any, Any], dict[str, Any]]:
    """Every model the operations read or answer, as component schemas."""
    wanted: dict[Any, None] = {(ErrorBody, "serialization"): None}
    for _, _, described in operations:
        if described.body is not None:
            wanted[(described.body, "validation")] = None
        for model in (described.response, *described.other.values()):
            if isinstance(model, type) and issubclass(model, BaseModel):
                wanted[(model, "serialization")] = None
    refs, defs = models_json_schema(list(wanted), ref_template=REF)
    return refs, defs.get("$defs", {})


def _parameters(path: str, described: Operation) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if described.loads_session:
        schema = TypeAdapter(SessionId).json_schema()
        found.append({"name": "session_id", "in": "path", "required": True, "schema": schema})
    for name, kind in described.path.items():
        found.append(
            {"name": name, "in": "path", "required": True, "schema": TypeAdapter(kind).json_schema()}
        )
    if described.query is not None:
        schema = described.query.model_json_schema(mode="validation")
        fields = described.query.model_fields
        for alias, name in query_names(described.query).items():
            prop = dict(schema["properties"].get(name) or schema["properties"].get(alias) or {})
            text = prop.pop("description", "")
            if alias != name:
                text = f"the same as `{name}`"
            prop.pop("title", None)
            found.append(
                {
                    "name": alias,
                    "in": "query",
                    "required": fields[name].is_required(),
                    "schema": prop,
                    **({"description": text} if text else {}),
                }
            )
    declared = {p["name"] for p in found if p["in"] == "path"}
    missing = [part[1:-1] for part in path.split("/") if part.startswith("{") and part[1:-1] not in declared]
    for name in missing:  # a path parameter the handler does not read itself
        found.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
    return found


def _content(model: Any, media_type: str, refs: dict[Any, Any]) -> dict[str, Any]:
    if model is None:
        return {media_type: {"schema": {"type": "string"}}}
    if (model, "serialization") in refs:
        return {media_type: {"schema": refs[(model, "serialization")]}}
    return {media_type: {"schema": TypeAdapter(model).json_schema(mode="serialization")}}


def _operation(
    path: str, method: str, described: Operation, name: str, refs: dict[Any, Any]
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(described.status): {
            "description": "OK" if described.status < 300 else "Created",
            "content": _content(described.response, described.media_type, refs),
        }
    }
    for status, model in described.other.items():
        responses[str(status)] = {
            "description": "see the body",
            "content": _content(model, "application/json", refs),
        }
    by_status: dict[int, list[ErrorCode]] = {}
    errors = described.error_codes()
    if is_metered(method, described.expensive):
        errors.append(ErrorCode.RATE_LIMITED)
    for code in errors:
        by_status.setdefault(HTTP_STATUS[code], []).append(code)
    for status, codes in sorted(by_status.items()):
        responses[str(status)] = {
            "description": "; ".join(f"`{code}`: {MEANING[code]}" for code in codes),
            "content": {"application/json": {"schema": refs[(ErrorBody, "serialization")]}},
        }
        if ErrorCode.RATE_LIMITED in codes:
            responses[str(status)]["headers"] = RETRY_AFTER
    op: dict[str, Any] = {"operationId": name, "summary": described.summary, "responses": responses}
    if described.description:
        op["description"] = described.description
    parameters = _parameters(path, described)
    if parameters:
        op["parameters"] = parameters
    if described.body is not None:
        op["requestBody"] = {
            "required": not described.body_optional,
            "content": {"application/json": {"schema": refs[(described.body, "validation")]}},
        }
    if described.public:
        op["security"] = []
    return op


def build_document(routes: list[BaseRoute]) -> dict[str, Any]:
    operations = _operations(routes)
    refs, schemas = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, described in operations:
        endpoint_name = f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}"
        paths.setdefault(path, {})[method] = _operation(
            path, method, described, endpoint_name or "root", refs
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": "Session Hub", "version": "2.0.0", "description": API_DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "HS256, see docs/auth.md; not needed in dev mode (HUB_DEV=1)",
                }
            },
        },
        "security": [{"bearer": []}],
    }


@operation("This document: the HTTP API as OpenAPI 3.1", dict[str, Any], public=True)
async def openapi(request: Request) -> Response:
    document = getattr(request.app.state, "openapi", None)
    if document is None:
        document = request.app.state.openapi = build_document(request.app.routes)
    return json_response(document)


openapi_route = Route("/openapi.json", openapi, methods=["GET"])
