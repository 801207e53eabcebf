"""GET /asyncapi.json: the WebSocket protocol as AsyncAPI 3.0, generated from the models.

The messages are the event models of `hub.event_data` (what clients send and what the
hub delivers), the control messages, and the connect query of `handlers.ws`; the error
codes and close codes come from their one table each (`hub.errors`, `hub.close_codes`).
The prose reference is `docs/protocol.md`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.close_codes import CloseCode, should_reconnect
from hub.errors import CLOSE_CODE, MEANING
from hub.event_data import CONTROL_MODELS, DATA_MODELS
from hub.events import DURABLE_TYPES, SENDABLE_BY_ROLE

from .api import operation
from .errors import json_response
from .ws import ConnectQuery

REF = "#/components/schemas/{model}"
_SENDABLE = sorted(set().union(*SENDABLE_BY_ROLE.values()))


def _data_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """type -> schema of its `data`, and the component schemas they refer to."""
    models = {t: m for t, m in {**DATA_MODELS, **CONTROL_MODELS}.items() if isinstance(m, type)}
    refs, defs = models_json_schema(
        [(m, "validation") for m in dict.fromkeys(models.values())], ref_template=REF
    )
    by_type: dict[str, Any] = {}
    for event_type, model in {**DATA_MODELS, **CONTROL_MODELS}.items():
        if isinstance(model, type) and issubclass(model, BaseModel):
            by_type[event_type] = refs[(model, "validation")]
        else:
            by_type[event_type] = TypeAdapter(model).json_schema()
    return by_type, defs.get("$defs", {})


def _envelope(event_type: str, data: Any, durable: bool) -> dict[str, Any]:
    seq = {"type": "integer", "minimum": 1} if durable else {"type": "null"}
    return {
        "type": "object",
        "required": ["type", "session_id", "seq", "ts", "actor", "data"],
        "properties": {
            "type": {"const": event_type},
            "session_id": {"type": "string"},
            "seq": seq,
            "ts": {"type": "string", "format": "date-time"},
            "actor": {"type": ["object", "null"], "description": "user_id, name, role of who caused it"},
            "data": data,
        },
    }


def _frame(event_type: str, data: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "id", "data"],
        "properties": {
            "type": {"const": event_type},
            "id": {"type": "string", "minLength": 1, "maxLength": 100, "description": "chosen by the client"},
            "data": data,
        },
    }


def _operation(action: str, summary: str, names: list[str]) -> dict[str, Any]:
    """An operation on the one channel, listing the channel's messages it carries."""
    return {
        "action": action,
        "channel": {"$ref": "#/channels/liveUpdates"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/liveUpdates/messages/{name}"} for name in names],
    }


def build_document() -> dict[str, Any]:
    data, schemas = _data_schemas()
    messages: dict[str, Any] = {}
    for event_type in sorted(DURABLE_TYPES):
        messages[f"event_{event_type}"] = {
            "name": event_type,
            "summary": f"a stored `{event_type}` event, delivered in seq order",
            "payload": _envelope(event_type, data[event_type], durable=True),
        }
    for event_type in CONTROL_MODELS:
        messages[f"control_{event_type}"] = {
            "name": event_type,
            "payload": _envelope(event_type, data[event_type], durable=False),
        }
    for event_type in _SENDABLE:
        roles = sorted(r for r, types in SENDABLE_BY_ROLE.items() if event_type in types)
        messages[f"frame_{event_type}"] = {
            "name": event_type,
            "summary": f"send a `{event_type}` event (roles: {', '.join(roles)}); answered by ack or error",
            "payload": _frame(event_type, data[event_type]),
        }
    messages["frame_heartbeat"] = {
        "name": "heartbeat",
        "summary": "keeps the connection alive; answered by pong",
        "payload": {"type": "object", "required": ["type"], "properties": {"type": {"const": "heartbeat"}}},
    }
    messages["frame_refresh"] = {
        "name": "refresh",
        "summary": "renews the connection's token in-band (docs/protocol.md, Token renewal); "
        "answered by refreshed or error",
        "payload": {
            "type": "object",
            "required": ["type", "data"],
            "properties": {
                "type": {"const": "refresh"},
                "id": {"type": "string", "minLength": 1, "maxLength": 100},
                "data": {
                    "type": "object",
                    "required": ["token"],
                    "properties": {"token": {"type": "string", "minLength": 1, "maxLength": 8192}},
                },
            },
        },
    }
    channel_messages = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
    query = ConnectQuery.model_json_schema()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Session Hub live updates",
            "version": "2.0.0",
            "description": "One WebSocket per member of a session; every frame is one JSON object. "
            "See docs/protocol.md for resume, audiences and limits.",
        },
        "defaultContentType": "application/json",
        "channels": {
            "liveUpdates": {
                "address": "/ws/live-updates",
                "messages": channel_messages,
                "bindings": {"ws": {"method": "GET", "query": query}},
            }
        },
        "operations": {
            "deliver": _operation(
                "send", "what the hub sends to a member", [m for m in messages if not m.startswith("frame_")]
            ),
            "ingest": _operation(
                "receive", "what a member sends to the hub", [m for m in messages if m.startswith("frame_")]
            ),
        },
        "components": {"schemas": schemas, "messages": messages},
        "x-error-codes": {str(code): text for code, text in MEANING.items()},
        "x-close-codes": {
            str(int(code)): {"name": code.name.lower(), "reconnect": should_reconnect(code)}
            for code in CloseCode
        },
        "x-close-code-of-error": {str(error): int(close) for error, close in CLOSE_CODE.items()},
    }


@operation("The WebSocket protocol as AsyncAPI 3.0", dict[str, Any], public=True)
async def asyncapi(request: Request) -> Response:
    document = getattr(request.app.state, "asyncapi", None)
    if document is None:
        document = request.app.state.asyncapi = build_document()
    return json_response(document)


asyncapi_route = Route("/asyncapi.json", asyncapi, methods=["GET"])
